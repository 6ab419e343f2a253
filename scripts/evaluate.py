"""Evaluate a BSMamba2 checkpoint and the voice detectors on songs with known vocals, and on instrumentals.

    # the held-out generated set (MUSDB18-HQ layout; songs with silent vocals count as instrumentals)
    python -m utils.synth data/detector/heldout --count 16 --seed0 700000 --duration 30 --backend fluidsynth
    python -m utils.synth data/detector/heldout --count 4 --seed0 790000 --duration 30 --vocal-fraction 0 \
        --backend fluidsynth
    python scripts/evaluate.py --data data/detector/heldout --checkpoint checkpoints/bsmamba2-demo \
        --instrumentals /path/to/real/instrumentals --cache runs/eval-cache --json eval.json
    # a folder in MUSDB18-HQ layout, e.g. MUSDB18-HQ test/, or songs generated on the fly
    python scripts/evaluate.py --data /data/musdb18hq/test --checkpoint checkpoints/bsmamba2-official
    python scripts/evaluate.py --generated 30 --checkpoint checkpoints/bsmamba2-demo

Per track with voice: cSDR (BSS Eval v4 on 1-s windows, NaN-ignoring median; official-model.md §6), uSDR (MDX utterance
SDR), and the level of the estimated vocals where the true vocals are silent (`bleed_db`, dB re the mixture
there; lower is better). Per instrumental (true vocals silent, or `--instrumentals` audio without stems): the
level of the vocal stem the model invents (`invented_db`, dB re the input, whole track). Each is reported for
the model's raw stems and after the clean-up (`utils.cleanup`, default settings) driven by each detector: the
level rule (`utils.activity`), the learned mixture-only and with-stem detectors (`utils.voice_detector`, when
their weights exist) and the two together (`both`). Phrase frame F1 of each detector is pooled over all frames
of all tracks against `utils.voice_detector.true_voice_frames`. Aggregates follow MUSDB: median over tracks
for cSDR, mean for uSDR. Baselines: silence, and the mixture scaled by 0.5. Separation uses the official
chunking (8-s chunks, no overlap) unless `--overlap` says otherwise; `--cache` keeps separated stems per
checkpoint (by `weights_fingerprint`), so re-scoring detectors and clean-up does not separate again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.inference.separator import SeparationSettings, Separator  # noqa: E402
from model.stft import SAMPLE_RATE  # noqa: E402
from model.weights.fingerprint import weights_fingerprint  # noqa: E402
from model.weights.pretrained import load_model  # noqa: E402
from utils.activity import VocalActivity, detect_vocal_activity  # noqa: E402
from utils.audio import load_audio  # noqa: E402
from utils.cleanup import GateSettings, apply_sparse_gate  # noqa: E402
from utils.metrics import FrameMask, summarize, track_metrics  # noqa: E402
from utils.synth import SongConfig, generate_song  # noqa: E402
from utils.voice_detector import (  # noqa: E402
    BOTH,
    DETECTOR_DIR,
    MIXTURE_ONLY,
    WITH_STEM,
    detect_voice,
    frame_f1,
    load_detector,
    true_voice_frames,
)

GENERATED_SEED0 = 700_000  # test songs use seeds far from the training (1000+) and validation (900000+) ones
GENERATED_DURATIONS_S = (30.0, 60.0)
GENERATED_FRACTIONS = (0.05, 0.6)
BASELINES = {"silence": lambda mixture: np.zeros_like(mixture), "mixture x 0.5": lambda mixture: 0.5 * mixture}
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
LEVEL = "level"

Track = tuple[str, np.ndarray, np.ndarray]  # (name, mixture, true vocals), float32 (channels, samples)
Detector = Callable[[np.ndarray, np.ndarray], VocalActivity]  # (mixture, separated vocals) -> phrases


def generated_tracks(
    count: int, backend: str, durations_s: tuple[float, float] = GENERATED_DURATIONS_S
) -> Iterator[Track]:
    """`count` fixed-seed songs spread evenly over duration and vocal fraction."""
    for i in range(count):
        position = i / max(count - 1, 1)
        config = SongConfig(
            duration_s=round(float(np.interp(position, [0, 1], durations_s)), 1),
            vocal_fraction=float(np.interp((i * 7 % count) / max(count - 1, 1), [0, 1], GENERATED_FRACTIONS)),
            backend=backend,
        )
        song = generate_song(GENERATED_SEED0 + i, config)
        yield f"gen_{GENERATED_SEED0 + i}", song.mixture, song.stems["vocals"]


def folder_tracks(root: Path) -> Iterator[Track]:
    """Tracks in MUSDB18-HQ layout at 44.1 kHz."""
    for track in sorted(p.parent for p in root.glob("*/mixture.wav")):
        mixture, rate = sf.read(track / "mixture.wav", dtype="float32", always_2d=True)
        vocals, _ = sf.read(track / "vocals.wav", dtype="float32", always_2d=True)
        if rate != SAMPLE_RATE:
            raise SystemExit(f"{track}: {rate} Hz, expected {SAMPLE_RATE}")
        yield track.name, mixture.T, vocals.T


def instrumental_tracks(root: Path) -> Iterator[Track]:
    """Audio files without voice (any format the app decodes, resampled to 44.1 kHz stereo): vocals are zero."""
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        waveform = load_audio(path).waveform
        yield f"instrumental/{path.stem}", waveform, np.zeros_like(waveform)


def detectors(detector_dir: Path) -> dict[str, Detector]:
    """The level rule, and the learned detectors whose weights are in `detector_dir`: each alone and, when
    both are there, the two together (`both`, what the app runs with the model they were trained for)."""
    found: dict[str, Detector] = {LEVEL: lambda mixture, vocals: detect_vocal_activity(vocals, SAMPLE_RATE, mixture=mixture)}
    learned = {}
    for variant in (MIXTURE_ONLY, WITH_STEM):
        path = detector_dir / f"{variant}.safetensors"
        if not path.is_file():
            print(f"no {variant} detector at {path}: skipped", flush=True)
            continue
        learned[variant] = [load_detector(path)]
    if len(learned) == 2:
        learned[BOTH] = [*learned[MIXTURE_ONLY], *learned[WITH_STEM]]
    for name, classifiers in learned.items():
        found[name] = lambda mixture, vocals, c=classifiers: detect_voice(mixture, SAMPLE_RATE, vocals, c)
    return found


def separated(separator: Separator, name: str, mixture: np.ndarray, cache: Path | None) -> dict[str, np.ndarray]:
    """The separator's stems, from `cache` when they are there."""
    path = None if cache is None else cache / f"{name.replace('/', '__')}.npy"
    if path is not None and path.is_file():
        vocals = np.load(path)
    else:
        vocals = separator.separate(mixture)["vocals"]
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, vocals)
    return {"vocals": vocals, "accompaniment": mixture - vocals}


def invented_db(estimate: np.ndarray, mixture: np.ndarray) -> float:
    """Level of a vocal estimate re the input over a whole instrumental, dB; -inf for a silent estimate."""
    energy = float(np.sum(estimate.astype(np.float64) ** 2))
    return 10.0 * np.log10(energy / float(np.sum(mixture.astype(np.float64) ** 2))) if energy else float("-inf")


def score(name: str, vocals: np.ndarray, estimate: np.ndarray, mixture: np.ndarray, activity: VocalActivity) -> dict:
    """One row: the paper's metrics and the bleed on a track with voice, the invented level on one without."""
    if not np.any(vocals):
        return {"track": name, "invented_db": invented_db(estimate, mixture)}
    active = FrameMask(activity.active, 1.0 / activity.params.hop_s)
    return {"track": name, **track_metrics(vocals, estimate, mixture, SAMPLE_RATE, active=active)}


def evaluate(tracks, separator: Separator, found: dict[str, Detector], cache: Path | None) -> dict:
    """Rows per system (raw model, clean-up per detector, baselines) and pooled phrase F1 per detector."""
    systems = ["model", *(f"model + clean-up ({d})" for d in found), *BASELINES]
    rows: dict[str, list[dict]] = {system: [] for system in systems}
    frames: dict[str, list[np.ndarray]] = {"truth": [], **{d: [] for d in found}}
    seconds = {"audio": 0.0, "separation": 0.0}
    for name, mixture, vocals in tracks:
        start = time.perf_counter()
        stems = separated(separator, name, mixture, cache)
        seconds["separation"] += time.perf_counter() - start
        seconds["audio"] += mixture.shape[1] / SAMPLE_RATE
        level = found[LEVEL](mixture, stems["vocals"])
        frames["truth"].append(true_voice_frames(vocals, mixture, SAMPLE_RATE))
        rows["model"].append(score(name, vocals, stems["vocals"], mixture, level))
        for detector, detect in found.items():
            activity = level if detector == LEVEL else detect(mixture, stems["vocals"])
            frames[detector].append(activity.active)
            cleaned = apply_sparse_gate(stems, activity, SAMPLE_RATE, GateSettings())["vocals"]
            rows[f"model + clean-up ({detector})"].append(score(name, vocals, cleaned, mixture, activity))
        for baseline, make in BASELINES.items():
            rows[baseline].append(score(name, vocals, make(mixture), mixture, level))
        line = "  ".join(f"{d} F1 {frame_f1(frames[d][-1], frames['truth'][-1]):.2f}" for d in found)
        print(f"{name:28} {_brief(rows['model'][-1])} | cleaned ({list(found)[-1]}) "
              f"{_brief(rows[systems[len(found)]][-1])} | {line}", flush=True)
    truth = np.concatenate(frames["truth"])
    return {
        "per_track": rows,
        "summary": {system: summarize(rows[system]) for system in ("model", *BASELINES)},
        "cleaned": {system: summarize(rows[system]) for system in systems[1 : 1 + len(found)]},
        "phrase_f1": {d: frame_f1(np.concatenate(frames[d]), truth) for d in found},
        "seconds": seconds,
    }


def _brief(row: dict) -> str:
    if "invented_db" in row:
        return f"invented {row['invented_db']:7.1f} dB"
    return f"cSDR {row['csdr']:6.2f}  uSDR {row['usdr']:6.2f}  bleed {row['bleed_db']:7.1f} dB"


def print_table(result: dict) -> None:
    print(f"\n{'system':32} {'cSDR (median)':>14} {'uSDR (mean)':>12} {'bleed dB (median)':>18} "
          f"{'invented dB (median)':>21}")
    for system, metrics in {**result["summary"], **result["cleaned"]}.items():
        cells = [metrics.get(key, {}).get(stat, float("nan")) for key, stat in
                 (("csdr", "median"), ("usdr", "mean"), ("bleed_db", "median"), ("invented_db", "median"))]
        print(f"{system:32} {cells[0]:14.2f} {cells[1]:12.2f} {cells[2]:18.1f} {cells[3]:21.1f}")
    print("\nphrase frame F1 (pooled): " + ", ".join(f"{d} {f1:.3f}" for d, f1 in result["phrase_f1"].items()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="folder of tracks in MUSDB18-HQ layout")
    source.add_argument("--generated", type=int, metavar="N", help="N generated test songs (fixed seeds)")
    parser.add_argument("--instrumentals", type=Path, help="also score audio files without voice in this folder")
    parser.add_argument("--backend", default="auto", help="generator backend for --generated")
    parser.add_argument("--durations", type=float, nargs=2, default=GENERATED_DURATIONS_S, metavar=("MIN", "MAX"),
                        help="song lengths in seconds for --generated (default: 30 60)")
    parser.add_argument("--checkpoint", default=None, help="model folder, Hub repo id or official .ckpt")
    parser.add_argument("--detectors", type=Path, default=DETECTOR_DIR, help="folder of the learned detectors")
    parser.add_argument("--overlap", type=float, default=0.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", help="auto (what the app runs), fp32, bf16, fp16")
    parser.add_argument("--cache", type=Path, help="keep separated stems here, per checkpoint")
    parser.add_argument("--json", type=Path, help="write per-track rows and aggregates here")
    args = parser.parse_args(argv)

    loaded = load_model(args.checkpoint)
    separator = Separator(loaded.model, SeparationSettings(overlap=args.overlap, device=args.device, precision=args.precision))
    cache = None
    if args.cache is not None:
        cache = args.cache / f"{weights_fingerprint(loaded.model)}-overlap{args.overlap:g}"
    tracks = folder_tracks(args.data) if args.data else generated_tracks(args.generated, args.backend, tuple(args.durations))
    if args.instrumentals:
        tracks = (*tracks, *instrumental_tracks(args.instrumentals))
    result = evaluate(tracks, separator, detectors(args.detectors), cache)
    result["model"] = loaded.describe()
    result["device"] = str(separator.device)
    result["clean_up"] = {key: float(value) for key, value in vars(GateSettings()).items()}
    print_table(result)
    print(f"\nseparation: {result['seconds']['separation']:.1f} s for {result['seconds']['audio']:.1f} s of audio")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
