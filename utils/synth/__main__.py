"""`python -m utils.synth OUT_DIR --count N ...`: see `utils.synth.songs.main`."""

from utils.synth.songs import main

main()
