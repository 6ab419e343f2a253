"""`python -m model song.mp3 ...`: the command line of `model.inference.cli`."""

import sys

from model.inference.cli import main

sys.exit(main())
