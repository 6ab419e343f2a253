"""Write the app's example songs: short generated songs with sparse vocals, as FLAC, plus their credits.

    python scripts/make_examples.py            # examples/*.flac and examples/README.md

The songs are synthetic (utils.synth, FluidSynth with the FluidR3 GM soundfont when available): the same
seeds give the same audio. Their true vocals are known, which is why the app can ship them.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.audio import write_audio  # noqa: E402
from utils.synth import SongConfig, generate_song  # noqa: E402

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
# (file name, seed, seconds, fraction of the song with voice): from very sparse to busy.
EXAMPLES = (
    ("sparse-voice-10pc", 424242, 24.0, 0.10),
    ("verse-and-gaps-30pc", 515151, 26.0, 0.30),
    ("mostly-sung-55pc", 616161, 22.0, 0.55),
)
CREDITS = """# Example songs

Synthetic songs made by this project's generator (`python scripts/make_examples.py`, `utils/synth.py`):
arrangement, melody and the source-filter singer are generated from the seed; the accompaniment is rendered
with FluidSynth and the FluidR3 GM soundfont (Frank Wen, MIT licence; Debian package `fluid-soundfont-gm`).
No recording of a real person is used. The songs are released with the project under the MIT licence.

| file | seed | length | voice in the song | vocal-to-accompaniment ratio |
| --- | --- | --- | --- | --- |
"""


def main() -> None:
    EXAMPLES_DIR.mkdir(exist_ok=True)
    rows = []
    for name, seed, seconds, fraction in EXAMPLES:
        song = generate_song(seed, SongConfig(duration_s=seconds, vocal_fraction=fraction))
        write_audio(EXAMPLES_DIR / f"{name}.flac", song.mixture, song.sample_rate, "flac", 16, overwrite=True)
        meta = song.meta
        rows.append(
            f"| {name}.flac | {seed} | {seconds:g} s | {meta['vocal_fraction']:.0%} | "
            f"{meta['vocal_to_accompaniment_db']:+.1f} dB | "
        )
        print(f"wrote {name}.flac ({meta['backend']})")
    (EXAMPLES_DIR / "README.md").write_text(CREDITS + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
