"""Brain-Score model plugin for tdsnn models.

Brain-Score pip-installs each plugin's requirements when it loads one unless
``BS_INSTALL_DEPENDENCIES`` is ``no``; tdsnn pins its own environment, so it sets
``no`` before anything imports brainscore, respecting a value the user chose.
"""
import os

os.environ.setdefault("BS_INSTALL_DEPENDENCIES", "no")
