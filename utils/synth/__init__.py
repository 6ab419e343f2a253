"""The song generator: synthetic songs with known stems and sparse vocals, in MUSDB18-HQ layout.

Used for training, evaluation and the examples; the app never imports it. How it is built, by module:

    songs.py               generate_song / write_song / generate_dataset and the CLI (`python -m utils.synth`)
    plan.py                where the voice sings: phrases covering a chosen fraction of the song
    theory.py              keys, chords, progressions, melodies
    arrange.py, grooves.py sections, instruments and the notes each part plays; drum grooves
    voice.py               the source-filter singer
    fluid.py               FluidSynth + FluidR3 GM backend (full band)
    numpy_instruments.py, numpy_drums.py   the dependency-free numpy backend
    mix.py, dsp.py         levels, pans, reverb, the vocal-to-accompaniment ratio; shared DSP helpers
"""

from utils.synth.songs import (
    BACKENDS,
    FILES,
    GENERATOR_VERSION,
    Song,
    SongConfig,
    generate_dataset,
    generate_song,
    resolve_backend,
    write_song,
)

__all__ = [
    "BACKENDS",
    "FILES",
    "GENERATOR_VERSION",
    "Song",
    "SongConfig",
    "generate_dataset",
    "generate_song",
    "resolve_backend",
    "write_song",
]
