"""Whole-song separation on the CPU: seconds per minute of audio and peak memory, by song length.

    python scripts/bench_separator.py --preset demo --minutes 1 10
    python scripts/bench_separator.py --preset released --minutes 1

Each (preset, length) runs in its own subprocess so that its peak RSS is its own. The song is noise (speed and
memory do not depend on the content) and the weights random. The peak includes
the song itself and the two returned stems (3 × 10.6 MB per stereo minute in float32); the working memory of
the separator is the rest.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.stft import SAMPLE_RATE  # noqa: E402
from model.bsmamba2 import PRESETS  # noqa: E402



def run_one(preset: str, minutes: float, threads: int, overlap: float) -> dict:
    import numpy as np
    import torch

    from model.bsmamba2 import BSMamba2
    from model.inference.separator import SeparationSettings, Separator

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    separator = Separator(BSMamba2(PRESETS[preset]), SeparationSettings(overlap=overlap))
    song = 0.1 * np.random.default_rng(0).standard_normal((2, int(minutes * 60 * SAMPLE_RATE)), dtype=np.float32)
    start = time.perf_counter()
    separator.separate(song)
    seconds = time.perf_counter() - start
    return {
        "preset": preset,
        "minutes": minutes,
        "seconds_per_minute": round(seconds / minutes, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "audio_in_and_out_mb": round(3 * song.nbytes / 2**20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--overlap", type=float, default=0.0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.preset, args.minutes[0], args.threads, args.overlap)))
        return
    print(f"{'preset':10} {'minutes':>8} {'s per min':>10} {'peak RSS':>10} {'audio in+out':>13}")
    for minutes in args.minutes:
        command = [sys.executable, __file__, "--child", "--preset", args.preset, "--minutes", str(minutes),
                   "--threads", str(args.threads), "--overlap", str(args.overlap)]
        row = json.loads(subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout)
        print(f"{row['preset']:10} {minutes:8g} {row['seconds_per_minute']:10} {row['peak_rss_mb']:8} MB "
              f"{row['audio_in_and_out_mb']:10} MB", flush=True)


if __name__ == "__main__":
    main()
