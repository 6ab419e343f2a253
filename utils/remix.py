"""Training data as the official recipe makes it (official-model.md §7-8): salient segments and random remixes.

A dataset is a folder of tracks in MUSDB18-HQ layout (`<track>/vocals.wav`, `drums.wav`, `bass.wav`,
`other.wav`); the synthetic generator (`utils.synth`) writes the same layout. For each stem, source-activity
detection lists the segments where it is salient; an example picks, independently per stem, a random salient
segment of that stem from any track, silences it with probability 0.1, scales it by U(0.5, 1.5), and sums.
The target is the scaled vocals. No normalisation.

Two optional departures from the official recipe (both off by default) aim the training at sparse vocals and
real music: ``aligned_probability`` takes that share of examples as an unremixed segment of one song from any
start (so the voice is often absent from part or all of it: the between-phrase silences the paper is about),
and ``backings`` with ``backing_probability`` replaces that share of the accompaniments by a segment of a real
instrumental recording (``utils.synth.recorded``), brought to the loudness of the accompaniment it replaces.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

log = logging.getLogger(__name__)

STEMS = ("vocals", "drums", "bass", "other")
TARGET = "vocals"

# Source-activity detection, `src/conf/sad/default.yaml` (official-model.md §7).
SAD_PIECES = 10
SAD_EPS = 1e-5  # exact-zero piece RMS replaced by this
SAD_GAMMA = 1e-3  # the threshold never goes below this (-60 dBFS)
SAD_QUANTILE = 0.15
SAD_SALIENT_FRACTION = 0.5  # more than half of the pieces above the threshold, in every channel
SAD_OVERLAP = 0.5  # windows hop by half their length

# Remixing, `src/conf/config.yaml` train_dataset (official-model.md §8).
SILENT_PROB = 0.1
GAIN_RANGE = (0.5, 1.5)
ACCOMPANIMENT = ("drums", "bass", "other")


def salient_starts(stem: np.ndarray, window: int) -> list[int]:
    """Start samples of the salient windows of a `(channels, samples)` stem (official SAD, official-model.md §7).

    Windows of `window` samples hop by half a window; a trailing partial window is dropped. A window is salient
    when, in every channel, more than half of its 10 pieces have an RMS strictly above
    max(15 % quantile of the piece RMS values, 1e-3).
    """
    hop = int(window * (1 - SAD_OVERLAP))
    piece = window // SAD_PIECES
    starts = list(range(0, stem.shape[-1] - window + 1, hop))
    if not starts:
        return []
    # (windows, channels, pieces, piece samples)
    frames = np.stack([stem[:, s : s + piece * SAD_PIECES] for s in starts]).reshape(
        len(starts), stem.shape[0], SAD_PIECES, piece
    )
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=-1))
    rms[rms == 0] = SAD_EPS
    threshold = np.maximum(np.quantile(rms, SAD_QUANTILE, axis=-1, keepdims=True), SAD_GAMMA)
    loud = (rms > threshold).sum(axis=-1) > SAD_PIECES * SAD_SALIENT_FRACTION
    return [start for start, ok in zip(starts, loud.all(axis=-1)) if ok]


@dataclass(frozen=True)
class Segment:
    track: Path
    start: int


def find_tracks(root: Path) -> list[Path]:
    """Track folders under `root` that have every stem (MUSDB18-HQ `train/` or a generated set)."""
    tracks = sorted(p.parent for p in Path(root).glob("*/vocals.wav"))
    return [t for t in tracks if all((t / f"{stem}.wav").is_file() for stem in STEMS)]


def index_salient_segments(tracks: list[Path], window: int) -> dict[str, list[Segment]]:
    """For each stem, every salient window of every track."""
    index: dict[str, list[Segment]] = {stem: [] for stem in STEMS}
    for track in tracks:
        for stem in STEMS:
            audio, _ = sf.read(track / f"{stem}.wav", dtype="float32", always_2d=True)
            index[stem] += [Segment(track, s) for s in salient_starts(audio.T, window)]
    for stem, segments in index.items():
        if not segments:
            raise ValueError(f"no salient {stem} segment of {window} samples in {len(tracks)} tracks")
        log.info("%s: %d salient segments", stem, len(segments))
    return index


def read_segment(path: Path, start: int, length: int) -> np.ndarray:
    """`(channels, length)` float32 from a WAV file."""
    audio, _ = sf.read(path, start=start, frames=length, dtype="float32", always_2d=True)
    return audio.T


class RandomRemixer:
    """Random remixes of salient segments (the official `MixingDataset` in training mode), plus the options above.

    `backings` are real instrumental recordings, each `(channels, samples)` float32 at the tracks' rate.
    """

    def __init__(
        self,
        root: Path,
        segment_samples: int,
        *,
        aligned_probability: float = 0.0,
        backings: Sequence[np.ndarray] = (),
        backing_probability: float = 0.0,
    ) -> None:
        for name, value in (("aligned_probability", aligned_probability), ("backing_probability", backing_probability)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if backing_probability and not any(b.shape[-1] >= segment_samples for b in backings):
            raise ValueError(f"backing_probability {backing_probability} needs a backing of {segment_samples} samples")
        self.segment_samples = segment_samples
        self.aligned_probability = aligned_probability
        self.backings = [b for b in backings if b.shape[-1] >= segment_samples]
        self.backing_probability = backing_probability
        self.tracks = find_tracks(root)
        if not self.tracks:
            raise ValueError(f"no track folders with {', '.join(STEMS)} WAVs under {root}")
        self.index = index_salient_segments(self.tracks, segment_samples)

    def example(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One `(mixture, vocals)` pair, each `(channels, segment_samples)` float32."""
        aligned = self.aligned_probability > 0 and rng.random() < self.aligned_probability
        if aligned:
            track = self.tracks[rng.integers(len(self.tracks))]
            length = sf.info(track / f"{TARGET}.wav").frames
            start = int(rng.integers(max(1, length - self.segment_samples + 1)))
        stems = {}
        for stem in STEMS:
            if not aligned:
                segment = self.index[stem][rng.integers(len(self.index[stem]))]
                track, start = segment.track, segment.start
            audio = read_segment(track / f"{stem}.wav", start, self.segment_samples)
            silent = rng.random() < SILENT_PROB
            stems[stem] = audio * (0.0 if silent else rng.uniform(*GAIN_RANGE))
        if self.backing_probability > 0 and rng.random() < self.backing_probability:
            self._replace_accompaniment(rng, stems)
        mixture = np.sum([stems[s] for s in STEMS], axis=0, dtype=np.float32)
        return mixture, stems[TARGET].astype(np.float32)

    def _replace_accompaniment(self, rng: np.random.Generator, stems: dict[str, np.ndarray]) -> None:
        """Put a random segment of a random backing, at the accompaniment's loudness, in place of it."""
        level = float(np.sqrt(np.mean(np.square(sum(stems[s] for s in ACCOMPANIMENT)))))
        backing = self.backings[rng.integers(len(self.backings))]
        start = int(rng.integers(backing.shape[-1] - self.segment_samples + 1))
        segment = backing[:, start : start + self.segment_samples]
        segment_level = float(np.sqrt(np.mean(np.square(segment))))
        if level == 0.0 or segment_level == 0.0:
            return
        stems["drums"] = segment * (level / segment_level)
        stems["bass"] = np.zeros_like(segment)
        stems["other"] = np.zeros_like(segment)

    def batch(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        """`(size, channels, samples)` mixtures and `(size, 1, channels, samples)` vocal targets."""
        pairs = [self.example(rng) for _ in range(size)]
        return np.stack([m for m, _ in pairs]), np.stack([v for _, v in pairs])[:, None]


def aligned_examples(root: Path, segment_samples: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed validation examples: one vocal-salient segment of real (unremixed) songs, no augmentation.

    Returns mixtures `(count, channels, samples)` and vocals `(count, 1, channels, samples)`.
    """
    tracks = find_tracks(root)
    if not tracks:
        raise ValueError(f"no validation tracks under {root}")
    rng = np.random.default_rng(seed)
    vocal_segments = index_salient_segments(tracks, segment_samples)[TARGET]
    chosen = [vocal_segments[i] for i in rng.choice(len(vocal_segments), size=count, replace=count > len(vocal_segments))]
    mixtures, vocals = [], []
    for segment in chosen:
        stems = [read_segment(segment.track / f"{s}.wav", segment.start, segment_samples) for s in STEMS]
        mixtures.append(np.sum(stems, axis=0, dtype=np.float32))
        vocals.append(stems[0])
    return np.stack(mixtures), np.stack(vocals)[:, None]
