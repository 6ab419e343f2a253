"""Train the voice detectors (with-stem and mixture-only) on generated songs and one separation model's stems.

    # one command: generates the songs if missing, separates them with the checkpoint (cached), trains both
    nice -n 15 python scripts/train_detector.py --checkpoint checkpoints/bsmamba2-demo

Songs: `--songs` with voice (seeds from `--seed0`) and `--instrumentals` without (seeds from
`--instrumental-seed0`), `--duration` s each, made by `python -m utils.synth` into `--data` (MUSDB18-HQ
layout); other track folders there whose names do not start with `song_` (real tracks with stems) are used
too. Every 8th song is kept out for validation.
Labels are `utils.voice_detector.true_voice_frames` of the true vocals. The separated stems are
cached per model (by `weights_fingerprint`) under `--cache`, so retraining for the same model is quick and
a new model only costs its separation. Writes `<out>/with-stem.safetensors` and
`<out>/mixture-only.safetensors` with their config and provenance, and prints validation frame F1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.stft import SAMPLE_RATE  # noqa: E402
from model.bsmamba2 import BSMamba2  # noqa: E402
from model.weights.fingerprint import weights_fingerprint  # noqa: E402
from model.weights.pretrained import load_model  # noqa: E402
from model.inference.separator import SeparationSettings, Separator  # noqa: E402
from utils.voice_detector import (  # noqa: E402
    CHANNELS,
    DETECTOR_DIR,
    DILATIONS,
    LEVEL_RANGE_DB,
    MEL_BANDS,
    MIXTURE_ONLY,
    VARIANTS,
    WITH_STEM,
    DetectorConfig,
    FrameClassifier,
    features_from_mel,
    frame_f1,
    load_detector,
    mean_probability,
    mel_power,
    phrases_from_probability,
    save_detector,
    true_voice_frames,
    voice_probability,
)

DEFAULT_CHECKPOINT = "checkpoints/bsmamba2-demo"
DEFAULT_DATA = Path("data/detector/train")
DEFAULT_CACHE = Path("runs/detector-cache")
SONGS, INSTRUMENTALS, DURATION_S = 14, 3, 30.0  # 8.5 minutes of audio: separation is most of the time
SEED0, INSTRUMENTAL_SEED0 = 100_000, 190_000  # far from the held-out evaluation seeds (700 000+)
VALIDATION_EVERY = 8
STEPS, BATCH, CROP_FRAMES, LEARNING_RATE = 600, 8, 200, 3e-3
# Loudness augmentation: the mixture-level feature is shifted by up to this many dB (both features relative).
GAIN_AUGMENT_DB = (-24.0, 6.0)
# EQ augmentation (`--eq-db`): a smooth random gain curve over the mel bands, this many cosine terms.
EQ_TERMS = 3
# The hysteresis is tuned on the validation songs: "on" thresholds tried, "off" this much lower.
ON_PROBABILITIES = (0.3, 0.4, 0.5, 0.6, 0.7)
HYSTERESIS_GAP = 0.2
TRAIN_SEED = 0
# Every song also gets a simulated leaky stem: a share of its true vocals plus its accompaniment this far
# down. The demo model leaks about -17 dB; the range covers better models too, so the detector learns the
# stem-to-mixture ratio rather than one model's habits.
VOICE_KEPT_RANGE = (0.5, 1.0)
LEAK_DB_RANGE = (-40.0, -12.0)


def ensure_songs(
    root: Path, songs: int, seed0: int, instrumentals: int, instrumental_seed0: int, duration: float
) -> list[Path]:
    """Generate the songs that are missing with the project's generator CLI (only their mixture and vocals,
    which is all a detector reads); all training track folders."""
    wanted = []
    for count, first, extra in ((songs, seed0, []), (instrumentals, instrumental_seed0, ["--vocal-fraction", "0"])):
        folders = [root / f"song_{seed:06d}" for seed in range(first, first + count)]
        if not all((folder / "vocals.wav").is_file() for folder in folders):
            command = [sys.executable, "-m", "utils.synth", str(root), "--count", str(count), "--seed0", str(first),
                       "--duration", str(duration), "--backend", "fluidsynth", "--files", "mixture", "vocals",
                       "--quiet", *extra]
            print(" ".join(command), flush=True)
            subprocess.run(command, check=True, cwd=Path(__file__).resolve().parents[1])
        wanted += folders
    real = [p.parent for p in root.glob("*/mixture.wav") if not p.parent.name.startswith("song_")]
    return sorted(wanted) + sorted(real)


def load_track(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(mixture, vocals), float32 `(channels, samples)` at 44.1 kHz."""
    mixture, rate = sf.read(folder / "mixture.wav", dtype="float32", always_2d=True)
    vocals, _ = sf.read(folder / "vocals.wav", dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise SystemExit(f"{folder}: {rate} Hz, expected {SAMPLE_RATE}")
    return mixture.T, vocals.T


def simulated_stem(rng: np.random.Generator, mixture: np.ndarray, vocals: np.ndarray) -> np.ndarray:
    """A leaky separator's vocal stem: part of the true vocals plus the accompaniment at `LEAK_DB_RANGE`."""
    kept = rng.uniform(*VOICE_KEPT_RANGE)
    leak = 10.0 ** (rng.uniform(*LEAK_DB_RANGE) / 20.0)
    return kept * vocals + leak * (mixture - vocals)


def song_tensors(
    folders: list[Path],
    separation: BSMamba2,
    separated_songs: int,
    cache: Path,
    config: DetectorConfig,
    seed: int,
    simulated: bool = True,
) -> list[dict]:
    """Per song: labels `(frames,)`, the mixture's mel power `(frames, bands)` and a list of vocal-stem mel
    powers: the `separation` model's stem (for the first `separated_songs` songs) and, if `simulated`, one
    simulated leaky stem.

    Separated stems are cached as float16 audio per model (`weights_fingerprint`), so a change of features
    never separates again.
    """
    cache = cache / weights_fingerprint(separation)
    cache.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    separator = None
    songs = []
    for index, folder in enumerate(folders):
        mixture, vocals = load_track(folder)
        labels = true_voice_frames(vocals, mixture, SAMPLE_RATE)
        stems = [simulated_stem(rng, mixture, vocals)] if simulated else []
        cached = cache / f"{folder.name}.npy"
        if cached.is_file():
            stems.append(np.load(cached).astype(np.float32))
        elif index < separated_songs:
            if separator is None:
                separator = Separator(separation, SeparationSettings())
            stems.append(separator.separate(mixture)["vocals"])
            np.save(cached, stems[-1].astype(np.float16))
            print(f"separated {folder.name}", flush=True)
        songs.append({
            "name": folder.name,
            "labels": labels,
            "mixture_mel": mel_power(mixture, SAMPLE_RATE, config, 0, labels.size),
            "stem_mels": [mel_power(stem, SAMPLE_RATE, config, 0, labels.size) for stem in stems],
            "separated": len(stems) > int(simulated),
        })
    return songs


def examples(songs: list[dict], variant: str, separated_only: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """(features, labels) per song and stem (with-stem) or per song (mixture-only); with `separated_only`,
    a song the checkpoint separated gives only its real stem (what validation should score)."""
    if variant == MIXTURE_ONLY:
        return [(features_from_mel(song["mixture_mel"], None), song["labels"]) for song in songs]
    return [
        (features_from_mel(song["mixture_mel"], mel), song["labels"])
        for song in songs
        for mel in (song["stem_mels"][-1:] if separated_only and song["separated"] else song["stem_mels"])
    ]


def random_eq(crop: np.ndarray, bands: int, peak_db: float, rng: np.random.Generator) -> np.ndarray:
    """The features of `crop` as if the song had passed through a random EQ (a smooth curve of up to
    ±`peak_db` over the mel bands, the same for mixture and stem): the mixture's band shape and level change
    exactly, the with-stem detector's per-band stem-to-mixture ratios rightly not at all; its overall
    stem-to-mixture level is left as it was (an approximation: that one would move a little)."""
    orders = np.arange(1, EQ_TERMS + 1)
    weights = rng.uniform(-1.0, 1.0, EQ_TERMS) / orders  # smoother: the higher orders weigh less
    curve = weights @ np.cos(np.outer(orders, np.linspace(0.0, np.pi, bands)))
    curve_db = peak_db * curve / max(np.abs(curve).max(), 1e-6)
    shape_db = crop[:, :bands] + curve_db
    level_change_db = 10.0 * np.log10(np.sum(10.0 ** (shape_db / 10.0), axis=1))
    crop = crop.copy()
    crop[:, :bands] = shape_db - level_change_db[:, None]
    crop[:, bands] = np.clip(crop[:, bands] + level_change_db, *LEVEL_RANGE_DB)
    return crop


def train_variant(
    config: DetectorConfig,
    train: list[tuple[np.ndarray, np.ndarray]],
    steps: int,
    batch: int,
    seed: int,
    eq_db: float = 0.0,
) -> FrameClassifier:
    """Adam on random crops (random loudness and, with `eq_db`, a random EQ), binary cross-entropy against
    the labels."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    variant = config.variant
    classifier = FrameClassifier(config)
    features = [x for x, _ in train]
    stacked = np.concatenate(features)
    classifier.feature_mean.copy_(torch.from_numpy(stacked.mean(axis=0)))
    classifier.feature_std.copy_(torch.from_numpy(stacked.std(axis=0) + 1e-3))
    level_column = config.mel_bands  # the mixture level, right after the mixture's bands
    optimiser = torch.optim.Adam(classifier.parameters(), lr=LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, LEARNING_RATE, total_steps=steps)
    for step in range(steps):
        batch_x, batch_y = [], []
        for index in rng.integers(len(train), size=batch):
            start = rng.integers(max(1, len(features[index]) - CROP_FRAMES))
            crop = features[index][start : start + CROP_FRAMES].copy()
            if eq_db > 0:
                crop = random_eq(crop, config.mel_bands, eq_db, rng)
            crop[:, level_column] = np.clip(crop[:, level_column] + rng.uniform(*GAIN_AUGMENT_DB), *LEVEL_RANGE_DB)
            batch_x.append(crop)
            batch_y.append(train[index][1][start : start + CROP_FRAMES])
        x = torch.from_numpy(np.stack(batch_x))
        y = torch.from_numpy(np.stack(batch_y).astype(np.float32))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(classifier(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 250 == 0 or step == steps - 1:
            print(f"{variant} step {step:5d} loss {loss.item():.4f}", flush=True)
    return classifier.eval()


def validation_f1(classifier: FrameClassifier, validation: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Frame F1 of the detector's phrases against the labels, all validation frames pooled."""
    probabilities = [voice_probability(classifier, x) for x, _ in validation]
    return _pooled_f1(probabilities, validation, classifier.config)


def tune_thresholds(
    classifier: FrameClassifier, validation: list[tuple[np.ndarray, np.ndarray]]
) -> tuple[FrameClassifier, float]:
    """Choose the hysteresis (on, off = on − HYSTERESIS_GAP) with the best validation F1; the tuned
    classifier (its config holds them) and that F1. The network runs once; only the decisions are redone."""
    probabilities = [voice_probability(classifier, x) for x, _ in validation]
    candidates = [classifier.config] + [
        dataclasses.replace(classifier.config, on_probability=on, off_probability=round(max(0.0, on - HYSTERESIS_GAP), 2))
        for on in ON_PROBABILITIES
    ]
    scored = [(_pooled_f1(probabilities, validation, config), config) for config in candidates]
    f1, classifier.config = max(scored, key=lambda pair: pair[0])  # the first of equals: the default if tied
    return classifier, f1


def pair_validation_f1(detector_dir: Path, validation: list[dict]) -> float | None:
    """Pooled validation F1 of the two detectors in `detector_dir` together (their mean probability, the
    with-stem file's hysteresis: what the app runs) on the separated validation songs, or None when a file
    is missing, the two read different features or no validation song was separated."""
    paths = [detector_dir / f"{variant}.safetensors" for variant in (MIXTURE_ONLY, WITH_STEM)]
    if not all(path.is_file() for path in paths) or not any(song["separated"] for song in validation):
        return None
    on_mixture, with_stem = (load_detector(path) for path in paths)
    features = ("window_s", "mel_bands", "mel_low_hz", "mel_high_hz", "activity")
    if any(getattr(on_mixture.config, name) != getattr(with_stem.config, name) for name in features):
        return None
    scored = examples(validation, WITH_STEM, separated_only=True)
    mixture_columns = on_mixture.config.num_features  # with-stem features start with the mixture's
    probabilities = [
        mean_probability([voice_probability(on_mixture, x[:, :mixture_columns]), voice_probability(with_stem, x)])
        for x, _ in scored
    ]
    return _pooled_f1(probabilities, scored, with_stem.config)


def _pooled_f1(
    probabilities: list[np.ndarray], validation: list[tuple[np.ndarray, np.ndarray]], config: DetectorConfig
) -> float:
    """Pooled frame F1 of the phrases that `config`'s hysteresis makes of per-song `probabilities`."""
    hop = round(config.activity.hop_s * SAMPLE_RATE)
    predicted = [
        phrases_from_probability(p, x.shape[0] * hop, SAMPLE_RATE, config)[0]
        for p, (x, _) in zip(probabilities, validation, strict=True)
    ]
    return frame_f1(np.concatenate(predicted), np.concatenate([y for _, y in validation]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help="separation model whose stems it sees")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--songs", type=int, default=SONGS)
    parser.add_argument("--instrumentals", type=int, default=INSTRUMENTALS)
    parser.add_argument("--seed0", type=int, default=SEED0)
    parser.add_argument("--instrumental-seed0", type=int, default=INSTRUMENTAL_SEED0)
    parser.add_argument("--duration", type=float, default=DURATION_S)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--batch", type=int, default=BATCH, help="crops of 4 s per step")
    parser.add_argument("--channels", type=int, default=CHANNELS, help="width of the network")
    parser.add_argument("--mel-bands", type=int, default=MEL_BANDS)
    parser.add_argument("--dilations", type=int, nargs="+", default=list(DILATIONS),
                        help="one residual convolution per dilation (context grows with their sum)")
    parser.add_argument("--eq-db", type=float, default=0.0,
                        help="random EQ of up to this many dB per training crop (0: none)")
    parser.add_argument("--seed", type=int, default=TRAIN_SEED)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--separated-songs", type=int, default=None,
                        help="separate only the first N songs with the checkpoint (default: all)")
    parser.add_argument("--simulated", action=argparse.BooleanOptionalAction, default=True,
                        help="add one simulated leaky stem per song to the with-stem training")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=DETECTOR_DIR)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    folders = ensure_songs(args.data, args.songs, args.seed0, args.instrumentals, args.instrumental_seed0, args.duration)
    separated = (len(folders) if args.separated_songs is None else args.separated_songs) if WITH_STEM in args.variants else 0
    base = DetectorConfig(channels=args.channels, mel_bands=args.mel_bands, dilations=tuple(args.dilations))
    simulated = args.simulated and WITH_STEM in args.variants  # only the with-stem detector sees stems
    separation = load_model(args.checkpoint).model
    songs = song_tensors(folders, separation, separated, args.cache, base, args.seed, simulated)
    train = [s for i, s in enumerate(songs) if i % VALIDATION_EVERY != VALIDATION_EVERY - 1]
    validation = [s for i, s in enumerate(songs) if i % VALIDATION_EVERY == VALIDATION_EVERY - 1]
    prepared = time.perf_counter() - started
    print(f"{len(train)} training and {len(validation)} validation songs ready in {prepared:.0f} s", flush=True)

    for variant in args.variants:
        stems_of = weights_fingerprint(separation) if variant == WITH_STEM else None
        config = dataclasses.replace(base, variant=variant, separation_weights=stems_of)
        classifier = train_variant(config, examples(train, variant), args.steps, args.batch, args.seed, args.eq_db)
        scored = examples(validation, variant, separated_only=True)
        f1 = None
        if scored:
            classifier, f1 = tune_thresholds(classifier, scored)
            print(f"{variant}: hysteresis on {classifier.config.on_probability:.2f} / off "
                  f"{classifier.config.off_probability:.2f}", flush=True)
        provenance = {
            "separation_checkpoint": args.checkpoint if variant == WITH_STEM else None,
            "command": " ".join(["scripts/train_detector.py", *(argv if argv is not None else sys.argv[1:])]),
            "train_songs": [s["name"] for s in train],
            "separated_train_songs": [s["name"] for s in train if s["separated"]] if variant == WITH_STEM else [],
            "simulated_leak_db": LEAK_DB_RANGE if variant == WITH_STEM and args.simulated else None,
            "validation_songs": [s["name"] for s in validation],
            "validation_frame_f1": None if f1 is None else round(f1, 4),
            "steps": args.steps,
            "batch": args.batch,
            "seed": args.seed,
            "eq_augment_db": args.eq_db,
        }
        save_detector(classifier, args.out / f"{variant}.safetensors", provenance)
        print(json.dumps({"variant": variant, "validation_frame_f1": provenance["validation_frame_f1"]}), flush=True)
    if (f1 := pair_validation_f1(args.out, validation)) is not None:
        print(json.dumps({"variant": "both", "validation_frame_f1": round(f1, 4)}), flush=True)
    print(f"done in {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
