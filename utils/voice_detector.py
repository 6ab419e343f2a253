"""Where the voice is, decided from the audio: a small frame classifier on the mixture and the separated stem.

The level rule in `utils.activity` reads only how loud the separated vocals are. A separator that leaks
(the bundled demo model leaves its vocal stem 15-17 dB under the mixture everywhere) fools it. This detector
looks at the spectra instead: per 20-ms frame (the activity hop), log-mel bands of the mixture relative to the
frame's own level (what the sound is), the stem-to-mixture ratio per band (how much of each band the
separator calls voice) and two levels; a dilated 1-D convolution over 1.2 s of such frames says "voice" or not.
Every feature is relative to the mixture or clipped, so the song's loudness does not matter, and each frame
needs only its own STFT window: features and probabilities can be computed block by block (`VoiceStream`).

A mixture-only variant (no stem features) serves the cheap preview that needs no separation.

Labels (`true_voice_frames`) are defined once here and used for training and for the evaluation's F1.

Axes: c - channel, t - frame, n - FFT bin, f - mel band, k - feature, b - batch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from safetensors.torch import load_file, save_file
from torch import nn

from utils.activity import (
    ABSOLUTE_FLOOR_DB,
    ActivityParams,
    VocalActivity,
    detect_vocal_activity,
    frame_hops_of,
    frame_level_db,
    hop_samples,
    hysteresis,
    phrases_from_frames,
)

logger = logging.getLogger(__name__)

DETECTOR_DIR = Path(__file__).resolve().parents[1] / "checkpoints" / "voice-detector"
WITH_STEM = "with-stem"
MIXTURE_ONLY = "mixture-only"
VARIANTS = (WITH_STEM, MIXTURE_ONLY)
BOTH = "both"  # the two detectors together: their mean probability (`mean_probability`)

# STFT window: 46 ms (2048 samples at 44.1 kHz), several periods of the lowest voice; hop = activity's 20 ms.
WINDOW_S = 0.046
# 32 mel bands from 60 Hz (below the lowest sung fundamental) to 16 kHz (sibilants, air).
MEL_BANDS = 32
MEL_LOW_HZ = 60.0
MEL_HIGH_HZ = 16000.0
# Power floor before the logarithm (-120 dB, under any band of a 16-bit signal): silence stays finite.
POWER_FLOOR = 1e-12
# Stem-to-mixture ratios are clipped here (dB): under -60 nothing is voice, over +20 is phase cancellation.
RATIO_RANGE_DB = (-60.0, 20.0)
# The mixture's frame level (dBFS-like) is clipped here: under -100 is silence, over 0 does not happen.
LEVEL_RANGE_DB = (-100.0, 0.0)

# Labels: a frame holds voice where the true vocals' frame level (activity's 100-ms RMS, loudest channel) is
# no more than 20 dB under the mixture's and above the official -60 dBFS floor; then the phrase rule
# (bridge gaps under MIN_GAP_S, drop runs under MIN_PHRASE_S) turns breaths inside a line into voice, so the
# classifier learns phrases, the thing the timeline, table and clean-up need.
LABEL_BELOW_MIXTURE_DB = 20.0
LABEL_FLOOR_DB = ABSOLUTE_FLOOR_DB

# Classifier: 1x1 projection, residual dilated convolutions, 1x1 to a logit.
CHANNELS = 32
KERNEL = 5
DILATIONS = (1, 2, 4, 8)
# Voice switches on above this probability and off below the lower one (hysteresis on the probability).
ON_PROBABILITY = 0.5
OFF_PROBABILITY = 0.3
# A stream works in blocks of at least this many samples (12 s): each pass through the STFT and the network
# has a fixed cost that the decoder's 1.5-s blocks would pay eight times as often.
STREAM_BLOCK_SAMPLES = 1 << 19


@dataclass(frozen=True)
class DetectorConfig:
    """Everything that defines a detector's features and network; saved with its weights."""

    variant: str = WITH_STEM
    window_s: float = WINDOW_S
    mel_bands: int = MEL_BANDS
    mel_low_hz: float = MEL_LOW_HZ
    mel_high_hz: float = MEL_HIGH_HZ
    channels: int = CHANNELS
    kernel: int = KERNEL
    dilations: tuple[int, ...] = DILATIONS
    on_probability: float = ON_PROBABILITY
    off_probability: float = OFF_PROBABILITY
    activity: ActivityParams = field(default_factory=ActivityParams)
    # with-stem: `model.weights.fingerprint.weights_fingerprint` of the separator whose stems it learnt from
    separation_weights: str | None = None

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if not 0.0 <= self.off_probability <= self.on_probability <= 1.0:
            raise ValueError("need 0 <= off_probability <= on_probability <= 1")
        if self.kernel % 2 != 1:
            raise ValueError(f"kernel must be odd, got {self.kernel}")

    @property
    def num_features(self) -> int:
        """Per frame: mixture shape (bands) + level, plus stem ratio (bands) + stem level for `with-stem`."""
        return self.mel_bands + 1 + (self.mel_bands + 1 if self.variant == WITH_STEM else 0)

    @property
    def context_frames(self) -> int:
        """Frames of context the network reads on each side of a frame."""
        return sum(d * (self.kernel - 1) // 2 for d in self.dilations)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> DetectorConfig:
        raw = json.loads(text)
        raw["dilations"] = tuple(raw["dilations"])
        raw["activity"] = ActivityParams(**raw["activity"])
        return cls(**raw)


# --- features --------------------------------------------------------------------------------------------


def stft_size(config: DetectorConfig, sample_rate: int) -> int:
    """FFT length: `window_s` rounded up to a power of two."""
    return 1 << int(np.ceil(np.log2(config.window_s * sample_rate)))


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, bands: int, low_hz: float, high_hz: float) -> np.ndarray:
    """`(bins, bands)` triangular filters, evenly spaced on the HTK mel scale, peak 1."""
    def to_mel(hz: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    high_hz = min(high_hz, sample_rate / 2)
    edges_hz = 700.0 * (10 ** (np.linspace(to_mel(low_hz), to_mel(high_hz), bands + 2) / 2595.0) - 1.0)
    bins_hz = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    lower, centre, upper = edges_hz[:-2], edges_hz[1:-1], edges_hz[2:]
    rising = (bins_hz[:, None] - lower) / (centre - lower)
    falling = (upper - bins_hz[:, None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def mel_power(
    audio: np.ndarray, sample_rate: int, config: DetectorConfig, first_frame: int, frames: int, offset: int = 0
) -> np.ndarray:
    """`(frames, bands)` mel power (channel mean) of frames `first_frame ...` of a signal, float32.

    `audio` `(channels, samples)` holds the signal's samples from `offset` on; samples outside it count as
    zero (the song's edges). Frame i's window is centred on the middle of hop i, `(i + 1/2) * hop`.
    """
    hop, n_fft = hop_samples(config.activity, sample_rate), stft_size(config, sample_rate)
    first = first_frame * hop + hop // 2 - n_fft // 2 - offset  # first window's first sample in `audio`
    window = torch.zeros((audio.shape[0], (frames - 1) * hop + n_fft))
    src_lo, src_hi = max(first, 0), min(first + window.shape[1], audio.shape[1])
    if src_hi > src_lo:
        window[:, src_lo - first : src_hi - first] = torch.from_numpy(audio[:, src_lo:src_hi])
    spectra = torch.stft(window, n_fft, hop, window=torch.hann_window(n_fft), center=False, return_complex=True)
    power = spectra.real.square() + spectra.imag.square()  # (c, n, t)
    return torch.einsum("cnt,nf->tf", power, _power_to_mel(sample_rate, n_fft, config, audio.shape[0])).numpy()


@lru_cache(maxsize=8)
def _power_to_mel(sample_rate: int, n_fft: int, config: DetectorConfig, channels: int) -> torch.Tensor:
    """`(bins, bands)` mel filters scaled so that bin powers summed over channels give the channel mean in
    dBFS-like units: Parseval, one-sided, so the bins of a frame sum to its windowed mean square."""
    taper = torch.hann_window(n_fft, dtype=torch.float64)
    bank = mel_filterbank(sample_rate, n_fft, config.mel_bands, config.mel_low_hz, config.mel_high_hz)
    scale = 2.0 / (n_fft * float(taper.square().sum()) * channels)
    return torch.from_numpy((bank * scale).astype(np.float32))


def features_from_mel(mixture_mel: np.ndarray, vocals_mel: np.ndarray | None) -> np.ndarray:
    """`(frames, bands)` mel powers → `(frames, features)` float32 (see `DetectorConfig.num_features`)."""
    mix_db = 10.0 * np.log10(mixture_mel + POWER_FLOOR)
    mix_level_db = 10.0 * np.log10(mixture_mel.sum(axis=1, keepdims=True) + POWER_FLOOR)
    columns = [mix_db - mix_level_db, np.clip(mix_level_db, *LEVEL_RANGE_DB)]
    if vocals_mel is not None:
        voc_db = 10.0 * np.log10(vocals_mel + POWER_FLOOR)
        voc_level_db = 10.0 * np.log10(vocals_mel.sum(axis=1, keepdims=True) + POWER_FLOOR)
        columns += [np.clip(voc_db - mix_db, *RATIO_RANGE_DB), np.clip(voc_level_db - mix_level_db, *RATIO_RANGE_DB)]
    return np.concatenate(columns, axis=1).astype(np.float32)


def frame_features(
    mixture: np.ndarray, sample_rate: int, config: DetectorConfig, vocals: np.ndarray | None = None
) -> np.ndarray:
    """`(frames, features)` of a whole song; frames as in `utils.activity` (`ceil(samples / hop)`)."""
    if (vocals is None) != (config.variant == MIXTURE_ONLY):
        raise ValueError(f"the {config.variant} detector needs {'no ' if vocals is None else ''}vocal stem")
    frames = -(-mixture.shape[1] // hop_samples(config.activity, sample_rate))
    mix_mel = mel_power(mixture, sample_rate, config, 0, frames)
    voc_mel = None if vocals is None else mel_power(vocals, sample_rate, config, 0, frames)
    return features_from_mel(mix_mel, voc_mel)


def true_voice_frames(vocals: np.ndarray, mixture: np.ndarray, sample_rate: int) -> np.ndarray:
    """`(frames,)` bool: the true voice of a song with known vocals (the labels; see LABEL_BELOW_MIXTURE_DB)."""
    params = ActivityParams()
    hop, frame_hops = hop_samples(params, sample_rate), frame_hops_of(params)
    vocal_db = frame_level_db(vocals, hop, frame_hops)
    mixture_db = frame_level_db(mixture, hop, frame_hops)
    present = (vocal_db > LABEL_FLOOR_DB) & (vocal_db >= mixture_db - LABEL_BELOW_MIXTURE_DB)
    return phrases_from_frames(present, vocals.shape[1], sample_rate, params)[0]


# --- network ---------------------------------------------------------------------------------------------


class FrameClassifier(nn.Module):
    """`(batch, frames, features)` → `(batch, frames)` voice logits; features standardised inside."""

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("feature_mean", torch.zeros(config.num_features))
        self.register_buffer("feature_std", torch.ones(config.num_features))
        self.project = nn.Conv1d(config.num_features, config.channels, 1)
        self.blocks = nn.ModuleList(
            nn.Conv1d(config.channels, config.channels, config.kernel, dilation=d, padding=d * (config.kernel - 1) // 2)
            for d in config.dilations
        )
        self.head = nn.Conv1d(config.channels, 1, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = rearrange((features - self.feature_mean) / self.feature_std, "b t k -> b k t")
        x = self.project(x)
        for block in self.blocks:
            x = x + torch.relu(block(torch.relu(x)))
        return rearrange(self.head(torch.relu(x)), "b 1 t -> b t")


def frame_f1(predicted: np.ndarray, truth: np.ndarray) -> float:
    """F1 of per-frame voice decisions `(frames,)` bool against the true voice frames; 1.0 when both are empty."""
    hits = int(np.sum(predicted & truth))
    total = int(np.sum(predicted)) + int(np.sum(truth))
    return 2.0 * hits / total if total else 1.0


def save_detector(classifier: FrameClassifier, path: Path, provenance: dict) -> None:
    """Weights, config and provenance in one safetensors file."""
    metadata = {"config": classifier.config.to_json(), "provenance": json.dumps(provenance)}
    state = {name: tensor.detach().contiguous() for name, tensor in classifier.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=metadata)
    path.chmod(0o644)  # safetensors writes 0600; the file ships with the repository


def load_detector(path: Path | str | None = None, variant: str = WITH_STEM) -> FrameClassifier:
    """A detector from its safetensors file (default: the shipped `checkpoints/voice-detector/<variant>`)."""
    path = Path(path) if path is not None else DETECTOR_DIR / f"{variant}.safetensors"
    return _load_cached(path.resolve(), path.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _load_cached(path: Path, _mtime_ns: int) -> FrameClassifier:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        config = DetectorConfig.from_json(handle.metadata()["config"])
    classifier = FrameClassifier(config)
    classifier.load_state_dict(load_file(str(path)))
    classifier.eval()
    logger.info("voice detector %s (%s) loaded from %s", config.variant, _size(classifier), path)
    return classifier


def _size(classifier: nn.Module) -> str:
    return f"{sum(p.numel() for p in classifier.parameters())} parameters"


# --- decisions -------------------------------------------------------------------------------------------


def voice_probability(classifier: FrameClassifier, features: np.ndarray) -> np.ndarray:
    """`(frames, features)` → `(frames,)` float32 probability of voice."""
    with torch.inference_mode():
        logits = classifier(torch.from_numpy(np.ascontiguousarray(features))[None])[0]
    return torch.sigmoid(logits).numpy()


class VoiceStream:
    """Voice probability of a long song fed in blocks: the same numbers as `voice_probability` on the whole.

    `push(mixture_block, vocals_block)` takes the next samples `(channels, samples)` (no vocals for the
    mixture-only detector) and returns the probabilities of the frames that no later sample can change;
    `finish()` returns the rest. Audio waits until `STREAM_BLOCK_SAMPLES` have come, then is worked through
    at once. Memory: that much audio and `2 * context_frames` frames of features, whatever the song's length. Phrases need the whole probability curve (50 values a second):
    collect it and call `phrases_from_probability`.
    """

    def __init__(self, classifier: FrameClassifier, sample_rate: int) -> None:
        self.classifier = classifier
        self.sample_rate = sample_rate
        config = classifier.config
        self._hop, self._n_fft = hop_samples(config.activity, sample_rate), stft_size(config, sample_rate)
        self._with_stem = config.variant == WITH_STEM
        self._audio: list[np.ndarray] = []  # [mixture, vocals] samples from `_audio_start` on
        self._audio_start = 0
        self._waiting: list[list[np.ndarray]] = []  # pushed blocks not yet in `_audio`
        self._waiting_samples = 0
        self._received = 0
        self._features = np.zeros((0, config.num_features), dtype=np.float32)  # from `_features_start` on
        self._features_start = 0
        self._next_probability = 0

    def push(self, mixture: np.ndarray, vocals: np.ndarray | None = None) -> np.ndarray:
        """`(frames,)` float32 probabilities of the frames now final (possibly none)."""
        if (vocals is not None) != self._with_stem or (vocals is not None and vocals.shape != mixture.shape):
            raise ValueError(f"the {self.classifier.config.variant} detector got the wrong inputs")
        self._waiting.append([mixture] if vocals is None else [mixture, vocals])
        self._waiting_samples += mixture.shape[1]
        if self._waiting_samples < STREAM_BLOCK_SAMPLES:
            return np.zeros(0, dtype=np.float32)
        self._take_waiting()
        # Frame i's window ends at i * hop + hop // 2 + n_fft // 2: frames whose window is all here are ready.
        ready = max(0, (self._received - self._hop // 2 - self._n_fft // 2) // self._hop + 1)
        self._add_features(ready)
        return self._probabilities(self._features_start + len(self._features) - self.classifier.config.context_frames)

    def finish(self) -> np.ndarray:
        """Probabilities of the remaining frames (`ceil(samples / hop)` frames in all)."""
        self._take_waiting()
        self._add_features(-(-self._received // self._hop))
        return self._probabilities(self._features_start + len(self._features))

    def _take_waiting(self) -> None:
        """Append the waiting blocks to `_audio`, one copy per signal."""
        if self._waiting:
            signals = zip(*([self._audio] if self._audio else []), *self._waiting)
            self._audio = [np.concatenate(pieces, axis=1) for pieces in signals]
            self._received += self._waiting_samples
            self._waiting, self._waiting_samples = [], 0

    def _add_features(self, ready: int) -> None:
        first = self._features_start + len(self._features)
        if ready > first:
            mels = [mel_power(a, self.sample_rate, self.classifier.config, first, ready - first, self._audio_start)
                    for a in self._audio]
            added = features_from_mel(mels[0], mels[1] if self._with_stem else None)
            self._features = np.concatenate([self._features, added])
            keep_from = max(0, ready * self._hop + self._hop // 2 - self._n_fft // 2)  # next window's start
            self._audio = [a[:, keep_from - self._audio_start :] for a in self._audio]
            self._audio_start = keep_from

    def _probabilities(self, until: int) -> np.ndarray:
        """Probabilities of frames `_next_probability ... until`, then drop features no frame needs."""
        start, context = self._next_probability, self.classifier.config.context_frames
        if until <= start:
            return np.zeros(0, dtype=np.float32)
        lo = max(start - context, self._features_start)
        hi = min(until + context, self._features_start + len(self._features))
        window = self._features[lo - self._features_start : hi - self._features_start]
        probability = voice_probability(self.classifier, window)[start - lo : until - lo]
        self._next_probability = until
        drop = max(0, until - context - self._features_start)
        self._features, self._features_start = self._features[drop:], self._features_start + drop
        return probability


def phrases_from_probability(
    probability: np.ndarray, num_samples: int, sample_rate: int, config: DetectorConfig
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Probability per frame → hysteresis → phrases (gaps under `min_gap_s` bridged, blips dropped)."""
    decided = hysteresis(probability, config.on_probability, config.off_probability)
    return phrases_from_frames(decided, num_samples, sample_rate, config.activity)


def detect_voice(
    mixture: np.ndarray,
    sample_rate: int,
    vocals: np.ndarray | None = None,
    classifiers: Sequence[FrameClassifier] | None = None,
) -> VocalActivity:
    """Phrases of a song `(channels, samples)` from the learned detectors, as a `VocalActivity`.

    Each of `classifiers` reads what its variant needs (a with-stem one also the separated stem `vocals`);
    with several, their mean probability is decided with the last one's hysteresis (`mean_probability`).
    Default: the with-stem detector with `vocals`, the mixture-only one without. The level curve and
    thresholds are the level rule's on the stem (on the mixture without one), kept for the plot; `active`,
    `segments` and `voice_probability` are the detectors'.
    """
    if mixture.ndim != 2 or mixture.shape[1] == 0:
        raise ValueError(f"mixture must be (channels, samples) with samples > 0, got shape {mixture.shape}")
    if vocals is not None and vocals.shape != mixture.shape:
        raise ValueError(f"mixture {mixture.shape} and vocals {vocals.shape} differ in shape")
    classifiers = classifiers or [load_detector(variant=MIXTURE_ONLY if vocals is None else WITH_STEM)]
    probability = mean_probability([
        voice_probability(c, frame_features(mixture, sample_rate, c.config, vocals if c.config.variant == WITH_STEM else None))
        for c in classifiers
    ])
    config = classifiers[-1].config
    level = detect_vocal_activity(mixture if vocals is None else vocals, sample_rate, config.activity, mixture=mixture)
    return learned_activity(level, probability, mixture.shape[1], sample_rate, config)


def mean_probability(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """Several detectors' `(frames,)` voice probabilities of one song, averaged per frame. The with-stem and
    mixture-only detectors miss and invent voice on different songs, so their mean errs less than either
    (phrase F1 on the bundled model's held-out songs: its card)."""
    return np.mean(np.stack(probabilities), axis=0).astype(np.float32)


def learned_activity(
    level: VocalActivity, probability: np.ndarray, num_samples: int, sample_rate: int, config: DetectorConfig
) -> VocalActivity:
    """The detector's decision from its per-frame `probability` `(frames,)`, with the level rule's curve and
    thresholds (`level`) kept for the plot: `active`, `segments` and `voice_probability` are the detector's."""
    active, segments = phrases_from_probability(probability, num_samples, sample_rate, config)
    return replace(
        level, active=active, segments=segments, params=config.activity, voice_probability=probability
    )


__all__ = [
    "BOTH",
    "DETECTOR_DIR",
    "MIXTURE_ONLY",
    "WITH_STEM",
    "DetectorConfig",
    "FrameClassifier",
    "VoiceStream",
    "detect_voice",
    "frame_f1",
    "learned_activity",
    "mean_probability",
    "frame_features",
    "load_detector",
    "mel_power",
    "phrases_from_probability",
    "save_detector",
    "true_voice_frames",
    "voice_probability",
]
