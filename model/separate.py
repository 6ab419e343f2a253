"""Kept alias of the command line: `python -m model.separate` is `python -m model` (`model.inference.cli`)."""

import sys

from model.inference.cli import main

if __name__ == "__main__":
    sys.exit(main())
