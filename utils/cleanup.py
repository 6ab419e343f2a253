"""Optional sparse-region gate: pull the vocal stem down where no voice was detected.

The paper's subject is bleed in regions without voice ("Mamba2 Meets Silence"). Given phrases from
`utils.activity.detect_vocal_activity`, the gate multiplies the vocals by a gain that is 1 inside every
phrase and `−attenuation_db` outside, with raised-cosine fades of `fade_s` placed *outside* the phrases
(so a phrase is never touched). What it removes from the vocals is added to the accompaniment, so
`vocals + accompaniment` still equals the mixture (up to float32 rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.inference.separator import ACCOMPANIMENT, VOCALS
from utils.activity import VocalActivity

__all__ = ["GateSettings", "apply_sparse_gate", "gate_gain", "gate_gain_between", "phrase_bounds"]

DEFAULT_ATTENUATION_DB = 30.0
"""Enough to push typical bleed (−20…−30 dB under the mix) below audibility without an audible pump."""

DEFAULT_FADE_S = 0.05
"""50 ms: long enough not to click, short next to a gap between phrases (`activity.MIN_GAP_S` = 0.5 s)."""



@dataclass(frozen=True)
class GateSettings:
    """How hard and how smoothly the gate closes."""

    attenuation_db: float = DEFAULT_ATTENUATION_DB
    fade_s: float = DEFAULT_FADE_S

    def __post_init__(self) -> None:
        if not self.attenuation_db >= 0:
            raise ValueError(f"attenuation_db must be >= 0, got {self.attenuation_db}")
        if not self.fade_s >= 0:
            raise ValueError(f"fade_s must be >= 0, got {self.fade_s}")


def gate_gain(
    activity: VocalActivity, num_samples: int, sample_rate: int, settings: GateSettings = GateSettings()
) -> np.ndarray:
    """`(samples,)` float32 gain: 1 in phrases, `10^(−dB/20)` away from them, raised-cosine fades between."""
    return gate_gain_between(activity, 0, num_samples, num_samples, sample_rate, settings)


def gate_gain_between(
    activity: VocalActivity,
    start: int,
    stop: int,
    num_samples: int,
    sample_rate: int,
    settings: GateSettings = GateSettings(),
) -> np.ndarray:
    """`gate_gain(...)[start:stop]` of a song of `num_samples`, computed for those samples only."""
    floor = 10.0 ** (-settings.attenuation_db / 20.0)
    starts, ends = phrase_bounds(activity, num_samples, sample_rate)
    if not starts.size:
        return np.full(stop - start, floor, dtype=np.float32)
    distance = _distance_to_phrases(np.arange(start, stop), starts, ends)
    fade = max(1, round(settings.fade_s * sample_rate))
    closed = np.minimum(distance / fade, 1.0)  # 0 in a phrase, 1 from `fade` samples away
    return (floor + (1.0 - floor) * 0.5 * (1.0 + np.cos(np.pi * closed))).astype(np.float32)


def apply_sparse_gate(
    stems: dict[str, np.ndarray],
    activity: VocalActivity,
    sample_rate: int,
    settings: GateSettings = GateSettings(),
) -> dict[str, np.ndarray]:
    """Gate `stems["vocals"]` `(channels, samples)` and move what it removes into `stems["accompaniment"]`.

    Returns a new dict (other stems are passed through); the inputs are not modified.
    """
    vocals, accompaniment = stems[VOCALS], stems[ACCOMPANIMENT]
    if vocals.shape != accompaniment.shape or vocals.ndim != 2:
        raise ValueError(
            f"vocals {vocals.shape} and accompaniment {accompaniment.shape} must be one (channels, samples)"
        )
    mixture = vocals + accompaniment
    gated = vocals * gate_gain(activity, vocals.shape[1], sample_rate, settings)
    return {**stems, VOCALS: gated, ACCOMPANIMENT: mixture - gated}


def phrase_bounds(activity: VocalActivity, num_samples: int, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last sample of each phrase (empty ones dropped), sorted: the gate's open spans."""
    bounds = np.round(np.asarray(activity.segments, dtype=np.float64).reshape(-1, 2) * sample_rate)
    bounds = np.clip(bounds, 0, num_samples).astype(np.int64)
    bounds = bounds[bounds[:, 1] > bounds[:, 0]]
    return bounds[:, 0], bounds[:, 1]


def _distance_to_phrases(positions: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Distance in samples from each position to the nearest phrase sample (0 inside one), float64."""
    following = np.searchsorted(ends, positions, side="right")  # the first phrase ending after the position
    has_next = following < starts.size
    to_next = np.where(has_next, np.maximum(starts[np.minimum(following, starts.size - 1)] - positions, 0), np.inf)
    has_previous = following > 0
    to_previous = np.where(has_previous, positions - ends[np.maximum(following - 1, 0)] + 1, np.inf)
    return np.minimum(to_next, to_previous).astype(np.float64)
