"""The test suite. Importing it first (conftest.py is tests.conftest) turns bytecode writing
back on where PYTHONDONTWRITEBYTECODE is set, as on these machines: the suite starts ~70
CLI processes and 4 workers, and each compiled the package and re-ran pytest's assertion
rewriting from source. Caches land in __pycache__ (git-ignored); a speed knob only."""

import os
import sys

sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
