"""Time the app's whole request path (decode, separate, activity, write stems, zip, plots) for one song.

    python scripts/bench_app.py --minutes 3            # a generated 3-minute song, the default model

Prints the time from the uploaded file to the finished result, the real-time factor, and the JSON size of
each figure sent to the browser.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ui.config import AppConfig  # noqa: E402
from ui.results import SeparationOptions  # noqa: E402
from ui.service import SeparationService  # noqa: E402
from utils.audio import write_audio  # noqa: E402
from utils.synth import SongConfig, generate_song  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--seed", type=int, default=31337)
    args = parser.parse_args()

    service = SeparationService(AppConfig.from_env(), checkpoint=args.checkpoint)
    with tempfile.TemporaryDirectory() as folder:
        song = generate_song(args.seed, SongConfig(duration_s=60 * args.minutes, vocal_fraction=0.3))
        path = write_audio(Path(folder) / "song.flac", song.mixture, song.sample_rate, "flac", 16).path
        start = time.perf_counter()
        result = service.separate(path, SeparationOptions())
        seconds = time.perf_counter() - start
    service.close()
    print(f"model: {result.model_description}")
    print(f"{args.minutes:g}-minute song: {seconds:.1f} s from upload to result "
          f"({60 * args.minutes / seconds:.1f}x real time; network alone {result.processing_s:.1f} s)")
    for name, figure in result.figures.items():
        print(f"figure {name}: {len(figure.to_json()) / 1000:.0f} kB of JSON")


if __name__ == "__main__":
    main()
