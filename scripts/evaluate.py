"""Evaluate a BSMamba2 checkpoint on songs with known vocals, with the paper's metrics and two floors.

    # a folder in MUSDB18-HQ layout (<track>/mixture.wav, vocals.wav), e.g. MUSDB18-HQ test/
    python scripts/evaluate.py --data /data/musdb18hq/test --checkpoint checkpoints/bsmamba2-official
    # the project's generated test set (fixed seeds, 30-60 s, sparsity 5-60 %), made on the fly
    python scripts/evaluate.py --generated 30 --checkpoint checkpoints/bsmamba2-demo --json eval.json

Per track: cSDR (BSS Eval v4 on 1-s windows, NaN-ignoring median; spec §6), uSDR (MDX utterance SDR), the
level of the estimated vocals where the true vocals are silent (dB relative to the mixture there; lower is
better), and how often the vocal-activity detector fires there. Aggregates follow MUSDB: median over tracks for
cSDR, mean for uSDR. Baselines: silence, and the mixture scaled by 0.5. Separation uses the official chunking
(8-s chunks, no overlap) unless `--overlap` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.stft import SAMPLE_RATE  # noqa: E402
from utils.cleanup import GateSettings, apply_sparse_gate  # noqa: E402
from model.weights.pretrained import load_model  # noqa: E402
from model.inference.separator import SeparationSettings, Separator  # noqa: E402
from utils.activity import detect_vocal_activity  # noqa: E402
from utils.metrics import FrameMask, summarize, track_metrics  # noqa: E402
from utils.synth import SongConfig, generate_song  # noqa: E402

GENERATED_SEED0 = 700_000  # test songs use seeds far from the training (1000+) and validation (900000+) ones
GENERATED_DURATIONS_S = (30.0, 60.0)
GENERATED_FRACTIONS = (0.05, 0.6)
BASELINES = {"silence": lambda mixture: np.zeros_like(mixture), "mixture x 0.5": lambda mixture: 0.5 * mixture}


def generated_tracks(
    count: int, backend: str, durations_s: tuple[float, float] = GENERATED_DURATIONS_S
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """`count` fixed-seed songs spread evenly over duration and vocal fraction: (name, mixture, vocals)."""
    for i in range(count):
        position = i / max(count - 1, 1)
        config = SongConfig(
            duration_s=round(float(np.interp(position, [0, 1], durations_s)), 1),
            vocal_fraction=float(np.interp((i * 7 % count) / max(count - 1, 1), [0, 1], GENERATED_FRACTIONS)),
            backend=backend,
        )
        song = generate_song(GENERATED_SEED0 + i, config)
        yield f"gen_{GENERATED_SEED0 + i}", song.mixture, song.stems["vocals"]


def folder_tracks(root: Path) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Tracks in MUSDB18-HQ layout: (name, mixture, vocals), float32 `(channels, samples)` at 44.1 kHz."""
    for track in sorted(p.parent for p in root.glob("*/mixture.wav")):
        mixture, rate = sf.read(track / "mixture.wav", dtype="float32", always_2d=True)
        vocals, _ = sf.read(track / "vocals.wav", dtype="float32", always_2d=True)
        if rate != SAMPLE_RATE:
            raise SystemExit(f"{track}: {rate} Hz, expected {SAMPLE_RATE}")
        yield track.name, mixture.T, vocals.T


def score(name: str, vocals: np.ndarray, estimate: np.ndarray, mixture: np.ndarray) -> dict:
    activity = detect_vocal_activity(estimate, SAMPLE_RATE, mixture=mixture)
    frame_rate = 1.0 / activity.params.hop_s
    active = FrameMask(activity.active, frame_rate)
    return {"track": name, **track_metrics(vocals, estimate, mixture, SAMPLE_RATE, active=active)}


def gated(stems: dict[str, np.ndarray], mixture: np.ndarray) -> dict[str, np.ndarray]:
    """The separator's stems after the optional sparse-region gate (what `--gate` in the CLI and app do)."""
    activity = detect_vocal_activity(stems["vocals"], SAMPLE_RATE, mixture=mixture)
    return apply_sparse_gate(stems, activity, SAMPLE_RATE, GateSettings())


def evaluate(tracks, separator: Separator, *, gate: bool = False) -> dict:
    rows: dict[str, list[dict]] = {"model": [], **{b: [] for b in BASELINES}}
    seconds = {"audio": 0.0, "separation": 0.0}
    for name, mixture, vocals in tracks:
        start = time.perf_counter()
        stems = separator.separate(mixture)
        estimate = (gated(stems, mixture) if gate else stems)["vocals"]
        seconds["separation"] += time.perf_counter() - start
        seconds["audio"] += mixture.shape[1] / SAMPLE_RATE
        rows["model"].append(score(name, vocals, estimate, mixture))
        for baseline, make in BASELINES.items():
            rows[baseline].append(score(name, vocals, make(mixture), mixture))
        row = rows["model"][-1]
        print(f"{name:24} cSDR {row['csdr']:6.2f}  uSDR {row['usdr']:6.2f}  bleed {row['bleed_db']:7.1f} dB", flush=True)
    return {
        "per_track": rows,
        "summary": {system: summarize(per_track) for system, per_track in rows.items()},
        "seconds": seconds,
    }


def print_table(summary: dict) -> None:
    print(f"\n{'system':16} {'cSDR (median)':>14} {'uSDR (mean)':>12} {'bleed dB (median)':>18} {'false activity':>15}")
    for system, metrics in summary.items():
        print(
            f"{system:16} {metrics['csdr']['median']:14.2f} {metrics['usdr']['mean']:12.2f} "
            f"{metrics['bleed_db']['median']:18.1f} {metrics['false_activity_rate']['mean']:15.3f}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="folder of tracks in MUSDB18-HQ layout")
    source.add_argument("--generated", type=int, metavar="N", help="N generated test songs (fixed seeds)")
    parser.add_argument("--backend", default="auto", help="generator backend for --generated")
    parser.add_argument("--durations", type=float, nargs=2, default=GENERATED_DURATIONS_S, metavar=("MIN", "MAX"),
                        help="song lengths in seconds for --generated (default: 30 60)")
    parser.add_argument("--checkpoint", default=None, help="model folder, Hub repo id or official .ckpt")
    parser.add_argument("--overlap", type=float, default=0.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--gate", action="store_true", help="apply the sparse-region gate to the model's stems")
    parser.add_argument("--json", type=Path, help="write per-track rows and aggregates here")
    args = parser.parse_args(argv)

    loaded = load_model(args.checkpoint)
    separator = Separator(loaded.model, SeparationSettings(overlap=args.overlap, device=args.device))
    tracks = folder_tracks(args.data) if args.data else generated_tracks(args.generated, args.backend, tuple(args.durations))
    result = evaluate(tracks, separator, gate=args.gate)
    result["gate"] = args.gate
    result["model"] = loaded.describe()
    result["device"] = str(separator.device)
    print_table(result["summary"])
    print(f"\nseparation: {result['seconds']['separation']:.1f} s for {result['seconds']['audio']:.1f} s of audio")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
