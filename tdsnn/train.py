"""``python -m tdsnn.train`` and ``torchrun -m tdsnn.train``: the ``tdsnn-train`` command
(``tdsnn.training.cli``)."""
import sys

from .training.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
