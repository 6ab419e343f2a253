"""Time BSMamba2 training steps on the CPU in float32 and under bf16 autocast, side by side in one run.

    python scripts/bench_train.py                         # the bundled demo model, batch 4 x 2 s, 1 thread
    python scripts/bench_train.py --preset released --segment-seconds 1 --batch-size 1 --threads 2

Each precision runs in its own subprocess (its own peak memory) from the same weights, the same random batch and
the same seed, for `--steps` optimizer steps of `scripts/train.py` (`train_step`: the official loss, clip 3, AdamW).
Prints seconds per step (the first step, which warms up, is left out), steps per hour, the speed-up over the
first precision, peak resident memory, and the loss after the last step next to the first precision's.
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

from model.bsmamba2 import PRESETS  # noqa: E402
from model.precision import AUTO, TRAINING_PRECISIONS  # noqa: E402
from model.stft import SAMPLE_RATE  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEMO_CHECKPOINT = REPO / "checkpoints" / "bsmamba2-demo"
TRAIN_PRECISIONS = tuple(p for p in TRAINING_PRECISIONS if p != AUTO)


def run_one(args: argparse.Namespace) -> dict:
    import torch

    from model.bsmamba2 import BSMamba2

    sys.path.insert(0, str(REPO / "scripts"))
    from train import WEIGHT_DECAY, train_step

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = BSMamba2.from_pretrained(str(DEMO_CHECKPOINT)) if args.preset == "demo" else BSMamba2(PRESETS[args.preset])
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=WEIGHT_DECAY)
    samples = int(args.segment_seconds * SAMPLE_RATE)
    generator = torch.Generator().manual_seed(1)
    mixture = 0.1 * torch.randn(args.batch_size, 2, samples, generator=generator)
    batch = (mixture, 0.5 * mixture[:, None])
    times, loss = [], float("nan")
    for _ in range(args.steps + 1):
        start = time.perf_counter()
        loss, _ = train_step(model, optimizer, [batch], 1, torch.device("cpu"), args.precision)
        times.append(time.perf_counter() - start)
    return {
        "seconds_per_step": round(min(times[1:]), 2),
        "steps": [round(t, 2) for t in times],
        "loss": loss,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=("demo", *PRESETS), default="demo", help="demo: the bundled weights")
    parser.add_argument("--precision", choices=TRAIN_PRECISIONS, action="append", help="default: fp32, bf16")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--segment-seconds", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.precision = args.precision[0]
        print(json.dumps(run_one(args)))
        return

    precisions = args.precision or list(TRAIN_PRECISIONS)
    print(f"{'preset':10} {'precision':9} {'s/step':>7} {'steps/h':>8} {'speed-up':>8} {'peak RSS':>9} "
          f"{'loss after':>10} {'all steps (s)':>24}")
    first = None
    for precision in precisions:
        command = [sys.executable, __file__, "--child", "--preset", args.preset, "--precision", precision,
                   "--batch-size", str(args.batch_size), "--segment-seconds", str(args.segment_seconds),
                   "--steps", str(args.steps), "--threads", str(args.threads)]
        result = json.loads(subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout.splitlines()[-1])
        first = first or result
        speed = first["seconds_per_step"] / result["seconds_per_step"]
        print(f"{args.preset:10} {precision:9} {result['seconds_per_step']:>7} {3600 / result['seconds_per_step']:>8.0f} "
              f"{speed:>7.2f}x {result['peak_rss_mb']:>6} MB {result['loss']:>10.4f} {str(result['steps']):>24}",
              flush=True)


if __name__ == "__main__":
    main()
