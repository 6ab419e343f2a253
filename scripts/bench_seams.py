"""Do chunk borders leave a seam? Sample-to-sample steps of the vocals near chunk borders vs elsewhere.

    python scripts/bench_seams.py                       # the default model, a 40-s generated song

For each overlap (0 = the official inference, 25 %, 50 %), prints the mean |x[t+1] − x[t]| of the separated
vocals within ±2 ms of every chunk border divided by the same mean elsewhere: about 1 means no seam, more
than 1 a discontinuity at the borders.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.stft import SAMPLE_RATE  # noqa: E402
from model.weights.pretrained import load_model  # noqa: E402
from model.inference.separator import SeparationSettings, Separator, chunk_starts  # noqa: E402
from utils.synth import SongConfig, generate_song  # noqa: E402

NEAR_BORDER_S = 0.002
OVERLAPS = (0.0, 0.25, 0.5)


def border_step_ratio(vocals: np.ndarray, borders: list[int]) -> float:
    """Mean absolute sample step within ±2 ms of `borders` over the mean step elsewhere."""
    steps = np.abs(np.diff(vocals, axis=1)).mean(axis=0)
    reach = round(NEAR_BORDER_S * SAMPLE_RATE)
    near = np.zeros(steps.size, dtype=bool)
    for border in borders:
        if reach < border < steps.size - reach:
            near[border - reach : border + reach] = True
    return float(steps[near].mean() / steps[~near].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = load_model(args.checkpoint).model
    mixture = generate_song(args.seed, SongConfig(duration_s=args.seconds, backend="numpy")).mixture
    for overlap in OVERLAPS:
        settings = SeparationSettings(overlap=overlap)
        vocals = Separator(model, settings).separate(mixture)["vocals"]
        starts = chunk_starts(mixture.shape[1], settings.chunk_samples, settings.hop_samples)
        borders = sorted({edge for start in starts for edge in (start, start + settings.chunk_samples)})
        print(f"overlap {overlap:.0%}: {len(starts)} chunks, border/elsewhere step ratio "
              f"{border_step_ratio(vocals, borders):.2f}")


if __name__ == "__main__":
    main()
