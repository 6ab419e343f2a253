"""Time one BSMamba2 forward on an 8-s stereo chunk on the CPU, for the released and smaller configs.

    python scripts/bench_model.py                      # every preset, 2 threads, 2 timed runs each
    python scripts/bench_model.py --preset released --threads 2 --runs 3 --profile

Each preset runs in its own subprocess so that its peak memory (max RSS) is its own. Random weights: speed does
not depend on their values. Prints seconds of compute per second of audio (lower is better; < 1 is faster
than real time) and the peak resident memory.
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

from model.bsmamba2 import PRESETS, BSMamba2  # noqa: E402

CHUNK_SECONDS = 8.0


def run_one(preset: str, threads: int, runs: int, profile: bool) -> dict:
    import torch

    from model.stft import SAMPLE_RATE

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = BSMamba2(PRESETS[preset]).eval()
    waveform = torch.randn(1, 2, int(CHUNK_SECONDS * SAMPLE_RATE)) * 0.1
    times = []
    with torch.inference_mode():
        model.separate_waveform(waveform)  # warm-up
        for _ in range(runs):
            start = time.perf_counter()
            model.separate_waveform(waveform)
            times.append(time.perf_counter() - start)
        if profile:
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as torch_profile

            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                model.separate_waveform(waveform)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), file=sys.stderr)
    best = min(times)
    return {
        "preset": preset,
        "parameters": sum(p.numel() for p in model.parameters()),
        "threads": threads,
        "seconds_per_chunk": [round(t, 3) for t in times],
        "seconds_per_audio_second": round(best / CHUNK_SECONDS, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), action="append", help="default: all")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table (one preset)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(run_one(args.preset[0], args.threads, args.runs, args.profile)))
        return
    print(f"{'preset':24} {'params':>11} {'s/chunk (8 s)':>22} {'s per s audio':>14} {'peak RSS':>9}")
    for preset in args.preset or list(PRESETS):
        command = [sys.executable, __file__, "--child", "--preset", preset]
        command += ["--threads", str(args.threads), "--runs", str(args.runs)] + (["--profile"] if args.profile else [])
        result = json.loads(subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout)
        print(
            f"{preset:24} {result['parameters']:>11,} {str(result['seconds_per_chunk']):>22} "
            f"{result['seconds_per_audio_second']:>14} {result['peak_rss_mb']:>7} MB",
            flush=True,
        )


if __name__ == "__main__":
    main()
