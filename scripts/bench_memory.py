"""Peak memory of a whole song through the CLI and through the app's request, by song length.

    python scripts/bench_memory.py --minutes 1 10

Each (entry point, length) runs in its own subprocess, so its peak RSS is its own: `python -m model` on a
FLAC file (the bundled demo model, FLAC out), and one `SeparationService.separate` call with the app's
defaults (plots included). The song is noise with a few tones, written to FLAC block by block; speed and
memory do not depend on the content. The last column is the ratio to the first length's peak.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.stft import AUDIO_CHANNELS, SAMPLE_RATE  # noqa: E402

BLOCK_SECONDS = 10
ENTRY_POINTS = ("cli", "app")


def write_song(path: Path, minutes: float) -> Path:
    """`minutes` of quiet noise and tones as 16-bit stereo FLAC, written 10 s at a time."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    block = BLOCK_SECONDS * SAMPLE_RATE
    with sf.SoundFile(path, "w", SAMPLE_RATE, AUDIO_CHANNELS, subtype="PCM_16", format="FLAC") as out:
        for start in range(0, round(minutes * 60 * SAMPLE_RATE), block):
            t = (start + np.arange(block)) / SAMPLE_RATE
            tone = 0.2 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * t / 7) > 0)
            out.write((tone[:, None] + 0.05 * rng.standard_normal((block, AUDIO_CHANNELS))).astype(np.float32))
    return path


def run_one(entry: str, song: Path, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    started = time.perf_counter()
    if entry == "cli":
        from model.inference.cli import main

        with tempfile.TemporaryDirectory() as out:
            code = main([str(song), "-o", out, "--format", "flac"])
        if code != 0:
            raise SystemExit(f"the CLI failed with exit status {code}")
    else:
        from ui.config import AppConfig
        from ui.results import SeparationOptions
        from ui.service import SeparationService

        service = SeparationService(AppConfig(max_minutes=120))
        try:
            service.separate(song, SeparationOptions())
        finally:
            service.close()
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--entry", choices=ENTRY_POINTS, action="append", help="default: both")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("ENTRY", "SONG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child[0], Path(args.child[1]), args.threads)))
        return
    print(f"{'entry':6} {'minutes':>8} {'seconds':>8} {'peak RSS':>10} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as folder:
        songs = {minutes: write_song(Path(folder) / f"{minutes:g}min.flac", minutes) for minutes in args.minutes}
        for entry in args.entry or ENTRY_POINTS:
            first = None
            for minutes, song in songs.items():
                command = [sys.executable, __file__, "--child", entry, str(song), "--threads", str(args.threads)]
                output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
                row = json.loads(output.splitlines()[-1])  # huggingface_hub prints a line of its own first
                first = first or row["peak_rss_mb"]
                print(f"{entry:6} {minutes:8g} {row['seconds']:8} {row['peak_rss_mb']:7} MB "
                      f"{row['peak_rss_mb'] / first:6.2f}", flush=True)


if __name__ == "__main__":
    main()
