"""Time the app's whole request path (decode, separate, activity, write stems, zip, plots) for one song.

    python scripts/bench_app.py --minutes 3            # a generated 3-minute song, the default model
    BSMAMBA2_COMPILE=0 python scripts/bench_app.py     # the same without compiling (the app's settings come
                                                       # from the environment, as on a Space)

Prints the app's start-up warm-up (compilation, when on), the time from the uploaded file to the finished
result, the real-time factor, and the JSON size of each figure sent to the browser.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

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
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    service = SeparationService(AppConfig.from_env(), checkpoint=args.checkpoint)
    warm_up = service.warm_up()
    with tempfile.TemporaryDirectory() as folder:
        song = generate_song(args.seed, SongConfig(duration_s=60 * args.minutes, vocal_fraction=0.3))
        path = write_audio(Path(folder) / "song.flac", song.mixture, song.sample_rate, "flac", 16).path
        start = time.perf_counter()
        result = service.separate(path, SeparationOptions())
        seconds = time.perf_counter() - start
    service.close()
    print(f"model: {result.model_description}; {result.precision}, "
          f"{'compiled, warm-up ' + format(warm_up, '.1f') + ' s' if warm_up else 'eager'}")
    print(f"{args.minutes:g}-minute song: {seconds:.1f} s from upload to result "
          f"({60 * args.minutes / seconds:.1f}x real time; network alone {result.processing_s:.1f} s)")
    for name, figure in result.figures.items():
        print(f"figure {name}: {len(figure.to_json()) / 1000:.0f} kB of JSON")


if __name__ == "__main__":
    main()
