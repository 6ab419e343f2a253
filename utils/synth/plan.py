"""Where the voice sings: a plan of vocal phrases with a controllable fraction of voiced time.

A phrase is the span ``[start_s, end_s)`` in which the singer is sounding by design: ``start_s`` is the onset
of its first syllable (consonant included) and ``end_s`` is the end of its last note, where the release
begins. After ``end_s`` the voice fades out over a short release and the vocal reverb decays; the generator
records where that tail ends (``tail_end_s``) and the vocal stem is exactly zero outside every
``[start_s, tail_end_s)``. The *vocal fraction* counts planned phrases only, never tails.

Phrases and gaps are whole numbers of grid steps (half beats) from the start of the song, so phrases start
on beats or off-beat eighths, like sung lines with pick-ups.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

GRID_BEATS = 0.5  # phrase boundaries fall on eighth notes
MIN_PHRASE_S = 1.0
MAX_PHRASE_S = 8.0
MIN_GAP_S = 0.5  # shortest silence between two phrases
END_MARGIN_S = 0.5  # no phrase ends later than this before the end of the song
PHRASE_LENGTH_MODE = 0.35  # phrase lengths lean short: triangular mode as a fraction of the allowed range


@dataclass(frozen=True)
class Phrase:
    """A planned vocal phrase; see the module docstring for what its boundaries mean."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def plan_phrases(
    rng: np.random.Generator, duration_s: float, vocal_fraction: float, beat_s: float
) -> list[Phrase]:
    """Phrases of 1-8 s on a half-beat grid covering about ``vocal_fraction`` of ``duration_s``.

    The voiced time is rounded to the grid. A positive fraction gets at least one shortest phrase when the
    song is long enough for it; a fraction that leaves too little room for the gaps is lowered (logged).
    """
    grid_s = GRID_BEATS * beat_s
    usable_steps = math.floor((duration_s - END_MARGIN_S) / grid_s)
    min_len = math.ceil(MIN_PHRASE_S / grid_s - 1e-9)
    max_len = max(min_len, math.floor(MAX_PHRASE_S / grid_s + 1e-9))
    min_gap = math.ceil(MIN_GAP_S / grid_s - 1e-9)
    if vocal_fraction <= 0 or usable_steps < min_len:
        return []
    voiced = max(round(vocal_fraction * duration_s / grid_s), min_len)
    total = voiced
    lengths = _phrase_lengths(rng, total, min_len, max_len)
    while (excess := sum(lengths) + (len(lengths) - 1) * min_gap - usable_steps) > 0:
        total = max(min_len, total - excess)
        lengths = _phrase_lengths(rng, total, min_len, max_len)
    if total != voiced:
        logger.info("vocal fraction %.3f lowered to fit %.1f s", vocal_fraction, duration_s)
    lengths = list(rng.permutation(lengths))
    gaps = _gaps(rng, usable_steps - sum(lengths), len(lengths), min_gap)
    phrases = []
    position = 0
    for gap, length in zip(gaps, lengths, strict=True):
        position += gap
        phrases.append(Phrase(position * grid_s, (position + length) * grid_s))
        position += length
    return phrases


def span_mask(spans: Sequence[tuple[float, float]], num_samples: int, sample_rate: int) -> np.ndarray:
    """Boolean ``(samples,)`` mask that is true inside any ``(start_s, end_s)`` span."""
    mask = np.zeros(num_samples, dtype=bool)
    for start_s, end_s in spans:
        mask[round(start_s * sample_rate) : round(end_s * sample_rate)] = True
    return mask


def _phrase_lengths(rng: np.random.Generator, total: int, min_len: int, max_len: int) -> list[int]:
    """Lengths in ``[min_len, max_len]`` that add up to ``total`` (which must be at least ``min_len``)."""
    lengths: list[int] = []
    remaining = total
    mode = min_len + PHRASE_LENGTH_MODE * (max_len - min_len)
    while remaining > 0:
        length = min(round(rng.triangular(min_len, mode, max_len + 1e-9)), remaining)
        if 0 < remaining - length < min_len:
            length = remaining if remaining <= max_len else remaining - min_len
        lengths.append(length)
        remaining -= length
    return lengths


def _gaps(rng: np.random.Generator, free_steps: int, count: int, min_gap: int) -> list[int]:
    """``count`` gaps before phrases: the first may be 0, the others at least ``min_gap``, sum <= free."""
    spare = free_steps - (count - 1) * min_gap
    shares = rng.dirichlet(np.ones(count + 1)) * spare
    extra = np.floor(shares).astype(int)
    return [int(extra[0])] + [min_gap + int(e) for e in extra[1:count]]
