"""``python -m tdsnn.register``: the command line of ``tdsnn.registration``."""
import sys

from .registration import main

if __name__ == "__main__":
    sys.exit(main())
