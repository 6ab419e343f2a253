"""Sparse-region clean-up: silence the vocal stem between the sung phrases.

The paper's subject is bleed in regions without voice ("Mamba2 Meets Silence"). Given phrases
`[(start_s, end_s)]` (from `utils.voice_detector.detect_voice` or `utils.activity.detect_vocal_activity`), the
clean-up multiplies the vocals by a gain that is 1 inside every phrase widened by a margin (`margin_before_s`
before its onset, so a soft consonant is never clipped, `margin_after_s` after its end, for the release and
reverb), and `−attenuation_db` (silence by default) further away, with raised-cosine fades of `fade_s` placed
outside the widened phrase. What it removes from the vocals is added to the accompaniment, so
`vocals + accompaniment` still equals the mixture (up to float32 rounding).

The gain depends only on the phrases and the sample index, so any block of a long song can be cleaned on its
own: `gate_gain_block(segments, start, length, ...)` and `apply_sparse_gate_block` (what the streaming
pipeline calls per block); `apply_sparse_gate` is the whole-song form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from model.inference.separator import ACCOMPANIMENT, VOCALS
from utils.activity import VocalActivity

__all__ = ["GateSettings", "apply_sparse_gate", "apply_sparse_gate_block", "gate_gain", "gate_gain_block"]

DEFAULT_ATTENUATION_DB = math.inf
"""Silence between phrases: the stem keeps nothing there, the accompaniment gets it all."""

DEFAULT_FADE_S = 0.05
"""50 ms: long enough not to click, short next to a gap between phrases (`activity.MIN_GAP_S` = 0.5 s)."""

DEFAULT_MARGIN_BEFORE_S = 0.1
"""Open 100 ms before a detected onset: the detector's 20-ms frames and 1-s context can place it late."""

DEFAULT_MARGIN_AFTER_S = 0.2
"""Close 200 ms after a detected end: a note's release and the first of its reverb stay in the stem."""

Segments = Sequence[tuple[float, float]]


@dataclass(frozen=True)
class GateSettings:
    """How far from the phrases and how hard and smoothly the clean-up closes."""

    attenuation_db: float = DEFAULT_ATTENUATION_DB
    fade_s: float = DEFAULT_FADE_S
    margin_before_s: float = DEFAULT_MARGIN_BEFORE_S
    margin_after_s: float = DEFAULT_MARGIN_AFTER_S

    def __post_init__(self) -> None:
        if not self.attenuation_db >= 0:
            raise ValueError(f"attenuation_db must be >= 0, got {self.attenuation_db}")
        if not self.fade_s >= 0:
            raise ValueError(f"fade_s must be >= 0, got {self.fade_s}")
        if not (self.margin_before_s >= 0 and self.margin_after_s >= 0):
            raise ValueError("margin_before_s and margin_after_s must be >= 0")

    @property
    def floor(self) -> float:
        """The gain away from the phrases: `10^(−attenuation_db/20)`, 0 for infinite attenuation."""
        return 10.0 ** (-self.attenuation_db / 20.0)


def gate_gain_block(
    segments: Segments, start: int, length: int, sample_rate: int, settings: GateSettings = GateSettings()
) -> np.ndarray:
    """`(length,)` float32 gain of samples `start ... start + length` of the song (see the module docstring)."""
    opens, closes = _widened(segments, sample_rate, settings)
    index = np.arange(start, start + length, dtype=np.float64)
    if opens.size == 0:
        return np.full(length, settings.floor, dtype=np.float32)
    # Sample n is open on [open_k, close_k); its distance to the nearest open span, 0 inside one.
    following = np.searchsorted(opens, index, side="right")  # first span opening after n
    before = np.where(following > 0, index - closes[np.maximum(following - 1, 0)] + 1, np.inf)
    after = np.where(following < opens.size, opens[np.minimum(following, opens.size - 1)] - index, np.inf)
    distance = np.maximum(np.minimum(before, after), 0.0)
    fade = max(1, round(settings.fade_s * sample_rate))
    closed = np.minimum(distance / fade, 1.0)  # 0 in a widened phrase, 1 from `fade` samples away
    floor = settings.floor
    return (floor + (1.0 - floor) * 0.5 * (1.0 + np.cos(np.pi * closed))).astype(np.float32)


def gate_gain(
    activity: VocalActivity, num_samples: int, sample_rate: int, settings: GateSettings = GateSettings()
) -> np.ndarray:
    """`(samples,)` float32 gain of a whole song: 1 near phrases, the floor away from them, fades between."""
    return gate_gain_block(activity.segments, 0, num_samples, sample_rate, settings)


def apply_sparse_gate_block(
    vocals: np.ndarray,
    accompaniment: np.ndarray,
    segments: Segments,
    start: int,
    sample_rate: int,
    settings: GateSettings = GateSettings(),
) -> tuple[np.ndarray, np.ndarray]:
    """Clean one block `(channels, samples)` starting at sample `start` of the song: (vocals, accompaniment)."""
    if vocals.shape != accompaniment.shape or vocals.ndim != 2:
        raise ValueError(
            f"vocals {vocals.shape} and accompaniment {accompaniment.shape} must be one (channels, samples)"
        )
    mixture = vocals + accompaniment
    gated = vocals * gate_gain_block(segments, start, vocals.shape[1], sample_rate, settings)
    return gated, mixture - gated


def apply_sparse_gate(
    stems: dict[str, np.ndarray],
    activity: VocalActivity,
    sample_rate: int,
    settings: GateSettings = GateSettings(),
) -> dict[str, np.ndarray]:
    """Clean `stems["vocals"]` `(channels, samples)` and move what it removes into `stems["accompaniment"]`.

    Returns a new dict (other stems are passed through); the inputs are not modified.
    """
    vocals, accompaniment = apply_sparse_gate_block(
        stems[VOCALS], stems[ACCOMPANIMENT], activity.segments, 0, sample_rate, settings
    )
    return {**stems, VOCALS: vocals, ACCOMPANIMENT: accompaniment}


def _widened(segments: Segments, sample_rate: int, settings: GateSettings) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, merged open spans `[open, close)` in samples (float) after widening by the margins."""
    spans = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    spans = spans[np.argsort(spans[:, 0], kind="stable")]
    opens = np.round((spans[:, 0] - settings.margin_before_s) * sample_rate)
    closes = np.round((spans[:, 1] + settings.margin_after_s) * sample_rate)
    if opens.size == 0:
        return opens, closes
    reach = np.maximum.accumulate(closes)
    new_span = np.concatenate([[True], opens[1:] > reach[:-1]])
    group = np.cumsum(new_span) - 1
    merged_opens = opens[new_span]
    merged_closes = np.zeros(merged_opens.size)
    np.maximum.at(merged_closes, group, closes)
    return merged_opens, merged_closes
