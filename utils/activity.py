"""Where the voice is: vocal activity from the separated vocal stem.

The paper's subject is sparse vocals, so the app shows when the voice sings. From the separated vocals
`(channels, samples)` we compute a level curve (frame RMS in dBFS, the loudest channel per frame), decide
vocal/no-vocal with hysteresis, bridge short gaps, drop short blips and return phrases `[(start_s, end_s)]`.

The loudness rule borrows from the official source-activity detection (official-model.md §7), which selects training
windows where at least 6 of 10 pieces of 0.8 s are louder than `gamma = 1e-3` (−60 dBFS). That absolute floor
stays the lowest level we ever call voice. The official adaptive part, a 15 % quantile per window, sits at the
quiet end of the window: right for keeping training windows with any sound, wrong for a separated stem whose
quiet end is separation bleed. Our adaptive part therefore hangs below the stem's own loud level (see
`REFERENCE_TOP_S`), so bleed 40 dB under the voice stays "no voice".

Channels: a frame's level is its loudest channel's, so a voice panned to one side is still voice. (The
official rule asks every channel to be salient, which suits picking training windows, not showing a voice.)
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import numpy as np
from einops import rearrange

logger = logging.getLogger(__name__)

# Official SAD (official-model.md §7, `src/conf/sad/default.yaml`): a piece counts as sound above RMS gamma = 1e-3.
OFFICIAL_GAMMA = 1e-3
# Lowest level that can ever switch the voice on: the official gamma in dBFS (−60).
ABSOLUTE_FLOOR_DB = 20.0 * math.log10(OFFICIAL_GAMMA)
# Official SAD replaces RMS exactly 0 by 1e-5 before thresholding; we clip the level curve there (−100 dBFS).
SILENT_RMS = 1e-5

# 20 ms hop: 50 frames a second, 30 000 frames for 10 minutes; finer than any phrase boundary we display.
HOP_S = 0.02
# 100 ms RMS frame (rounded to an odd number of hops, centred): several pitch periods of the lowest voice;
# a loud phrase comes out about half a frame (50 ms) wider on each side, which a gate welcomes.
FRAME_S = 0.1
# The stem's loud level is the level its loudest second (in total, wherever it lies) reaches: one second of
# voice anywhere in the song sets it, clicks and transients adding up to less do not. A stem with less than a
# second of voice falls back to the absolute floor.
REFERENCE_TOP_S = 1.0
# "On" sits 30 dB under that loud level: a soft verse 20-25 dB under a belted chorus is still voice, bleed
# 40 dB under the voice is not.
ON_BELOW_REFERENCE_DB = 30.0
# "Off" sits 6 dB under "on": a voice wobbling around one threshold does not chatter on and off.
HYSTERESIS_DB = 6.0
# With the mixture at hand, a frame whose vocals sit more than 20 dB under the mixture is bleed, not voice:
# sung lines sit within about -10..+5 dB of the band (-12 dB or more against the mixture), while a separator's
# leakage in a gap between phrases sits 25 dB or more under it. This is what makes the sparse-region gate
# useful: bleed in a loud instrumental passage can be as loud as a soft verse elsewhere in the song.
BELOW_MIXTURE_DB = 20.0
# Silences shorter than 0.5 s (breaths, stop consonants, short rests inside a line) do not split a phrase.
MIN_GAP_S = 0.5
# Sounds shorter than 0.25 s after bridging (a click, a bleed transient, half a syllable) are not a phrase.
MIN_PHRASE_S = 0.25


@dataclass(frozen=True)
class ActivityParams:
    """How vocal activity is decided; every default is the module constant of the same name."""

    hop_s: float = HOP_S
    frame_s: float = FRAME_S
    absolute_floor_db: float = ABSOLUTE_FLOOR_DB
    reference_top_s: float = REFERENCE_TOP_S
    on_below_reference_db: float = ON_BELOW_REFERENCE_DB
    hysteresis_db: float = HYSTERESIS_DB
    below_mixture_db: float = BELOW_MIXTURE_DB
    min_gap_s: float = MIN_GAP_S
    min_phrase_s: float = MIN_PHRASE_S

    def __post_init__(self) -> None:
        if self.hop_s <= 0 or self.frame_s < self.hop_s:
            raise ValueError(f"need 0 < hop_s <= frame_s, got hop_s={self.hop_s}, frame_s={self.frame_s}")
        if self.reference_top_s <= 0:
            raise ValueError(f"reference_top_s must be positive, got {self.reference_top_s}")
        if min(self.on_below_reference_db, self.hysteresis_db, self.min_gap_s, self.min_phrase_s) < 0:
            raise ValueError("on_below_reference_db, hysteresis_db, min_gap_s and min_phrase_s must be >= 0")


@dataclass(frozen=True, eq=False)
class VocalActivity:
    """Vocal activity of one stem, times in seconds.

    Frame `i` stands for the hop `[i·hop, (i+1)·hop)` samples; its level is the RMS over `frame_s` centred
    there. The phrases come from the level rule below, or from the learned detector (`voice_probability`).
    """

    frame_times_s: np.ndarray  # (frames,) centre of each frame's hop
    level_db: np.ndarray  # (frames,) RMS of the loudest channel over the frame, dBFS, clipped at −100
    reference_db: float  # the stem's loud level (see REFERENCE_TOP_S)
    on_threshold_db: float
    off_threshold_db: float
    active: np.ndarray  # (frames,) bool, after hysteresis and minimum lengths
    segments: list[tuple[float, float]]  # phrases, sorted, disjoint
    duration_s: float
    params: ActivityParams
    # (frames,) the learned detector's voice probability in [0, 1] when it decided (utils.voice_detector),
    # None for the level rule; `active` and `segments` then come from it, the thresholds stay the level rule's.
    voice_probability: np.ndarray | None = None

    @property
    def voiced_s(self) -> float:
        return float(sum(end - start for start, end in self.segments))

    @property
    def voiced_fraction(self) -> float:
        return self.voiced_s / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def phrase_count(self) -> int:
        return len(self.segments)

    @property
    def longest_silence_s(self) -> float:
        """Longest stretch without voice: between two phrases, before the first or after the last."""
        edges = [0.0, *(t for segment in self.segments for t in segment), self.duration_s]
        return max(end - start for start, end in zip(edges[::2], edges[1::2], strict=True))

    def summary(self) -> dict:
        """JSON-ready key numbers: seconds, percent, counts and thresholds in dBFS."""
        return {
            "detector": "level" if self.voice_probability is None else "learned",
            "duration_s": round(self.duration_s, 3),
            "voiced_s": round(self.voiced_s, 3),
            "voiced_percent": round(100.0 * self.voiced_fraction, 1),
            "phrase_count": self.phrase_count,
            "longest_silence_s": round(self.longest_silence_s, 3),
            "reference_dbfs": round(self.reference_db, 1),
            "on_threshold_dbfs": round(self.on_threshold_db, 1),
            "off_threshold_dbfs": round(self.off_threshold_db, 1),
        }

    def to_json(self) -> dict:
        """What the app writes as `activity.json`: phrases, summary and parameters, no per-frame arrays."""
        return {
            "segments": [[round(start, 3), round(end, 3)] for start, end in self.segments],
            "summary": self.summary(),
            "params": dataclasses.asdict(self.params),
        }


def detect_vocal_activity(
    vocals: np.ndarray,
    sample_rate: int,
    params: ActivityParams = ActivityParams(),
    *,
    mixture: np.ndarray | None = None,
) -> VocalActivity:
    """Find the sung phrases in a separated vocal stem `(channels, samples)`.

    With the `mixture` (same shape), frames where the vocals sit more than `below_mixture_db` under the
    mixture are not voice, however loud they are in absolute terms.
    """
    if vocals.ndim != 2 or vocals.shape[1] == 0:
        raise ValueError(f"vocals must be (channels, samples) with samples > 0, got shape {vocals.shape}")
    if mixture is not None and mixture.shape != vocals.shape:
        raise ValueError(f"mixture {mixture.shape} and vocals {vocals.shape} differ in shape")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    hop = hop_samples(params, sample_rate)
    mixture_energy = None if mixture is None else HopEnergy.of(mixture, hop)
    return activity_from_energy(HopEnergy.of(vocals, hop), sample_rate, params, mixture=mixture_energy)


def activity_from_energy(
    vocals: HopEnergy,
    sample_rate: int,
    params: ActivityParams = ActivityParams(),
    *,
    mixture: HopEnergy | None = None,
) -> VocalActivity:
    """`detect_vocal_activity` from the hop energies of the vocals (and the mixture) of a whole song."""
    num_samples, hop, frame_hops = vocals.num_samples, vocals.hop, frame_hops_of(params)
    level_db = level_db_from_energy(vocals.per_hop(), num_samples, hop, frame_hops)
    frames = level_db.size
    loudest = min(frames, max(1, round(params.reference_top_s * sample_rate / hop)))
    reference_db = float(np.partition(level_db, frames - loudest)[frames - loudest])
    on_db = max(params.absolute_floor_db, reference_db - params.on_below_reference_db)
    off_db = on_db - params.hysteresis_db

    deciding_db = level_db
    if mixture is not None:
        mixture_db = level_db_from_energy(mixture.per_hop(), num_samples, hop, frame_hops)
        bleed = level_db < mixture_db - params.below_mixture_db
        deciding_db = np.where(bleed, level_db.min(initial=20.0 * math.log10(SILENT_RMS)), level_db)
    active, segments = phrases_from_frames(hysteresis(deciding_db, on_db, off_db), num_samples, sample_rate, params)
    logger.debug(
        "vocal activity: reference %.1f dBFS, on %.1f, %d phrases", reference_db, on_db, len(segments)
    )
    return VocalActivity(
        frame_times_s=frame_times(frames, hop, num_samples, sample_rate),
        level_db=level_db,
        reference_db=reference_db,
        on_threshold_db=on_db,
        off_threshold_db=off_db,
        active=active,
        segments=segments,
        duration_s=num_samples / sample_rate,
        params=params,
    )


def hop_samples(params: ActivityParams, sample_rate: int) -> int:
    """Samples per frame hop at `sample_rate`."""
    return max(1, round(params.hop_s * sample_rate))


def frame_hops_of(params: ActivityParams) -> int:
    """The RMS frame in hops: `frame_s` rounded to an odd number of hops, so a frame is centred on its hop."""
    return 2 * round((params.frame_s / params.hop_s - 1) / 2) + 1


def frame_times(frames: int, hop: int, num_samples: int, sample_rate: int) -> np.ndarray:
    """`(frames,)` seconds: the centre of each frame's hop (the last hop may be short)."""
    block_starts = np.arange(frames) * hop
    return (block_starts + np.minimum(block_starts + hop, num_samples)) / (2.0 * sample_rate)


def phrases_from_frames(
    decided: np.ndarray, num_samples: int, sample_rate: int, params: ActivityParams = ActivityParams()
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Per-frame voice decisions `(frames,)` bool → phrases: gaps under `min_gap_s` bridged, runs under
    `min_phrase_s` dropped. Returns the `(frames,)` bool mask of the phrases and their `(start_s, end_s)`."""
    hop = hop_samples(params, sample_rate)
    starts, ends = bridge_and_drop(
        *runs(decided),
        min_gap=params.min_gap_s * sample_rate / hop,
        min_phrase=params.min_phrase_s * sample_rate / hop,
    )
    segments = [
        (start * hop / sample_rate, min(end * hop, num_samples) / sample_rate)
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True)
    ]
    return spans_mask(starts, ends, decided.size), segments


def activity_mask(activity: VocalActivity, num_samples: int, sample_rate: int) -> np.ndarray:
    """`(samples,)` bool, True inside the phrases: a gate for the vocal stem."""
    bounds = np.round(np.asarray(activity.segments, dtype=np.float64).reshape(-1, 2) * sample_rate)
    bounds = np.clip(bounds, 0, num_samples).astype(np.int64)
    return spans_mask(bounds[:, 0], bounds[:, 1], num_samples)


def spans_mask(starts: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
    """`(length,)` bool, True on `[start, end)` of each span."""
    marks = np.zeros(length + 1, dtype=np.int64)
    np.add.at(marks, starts, 1)
    np.add.at(marks, ends, -1)
    return np.cumsum(marks[:-1]) > 0


class HopEnergy:
    """Energy (sum of squares) per channel and hop of a signal, gathered block by block.

    What activity detection needs of a song: 50 numbers a second per channel instead of 44 100.
    """

    def __init__(self, channels: int, hop: int) -> None:
        self.hop = hop
        self.num_samples = 0
        self._full: list[np.ndarray] = []  # (channels, hops) of complete hops
        self._rest = np.zeros((channels, 0), dtype=np.float32)  # samples of the hop not yet complete

    @classmethod
    def of(cls, signal: np.ndarray, hop: int) -> HopEnergy:
        """The energy of a whole `(channels, samples)` signal."""
        energy = cls(signal.shape[0], hop)
        energy.add(signal)
        return energy

    def add(self, block: np.ndarray) -> None:
        """Take the next `(channels, n)` samples."""
        self.num_samples += block.shape[1]
        if self._rest.shape[1]:
            block = np.concatenate([self._rest, block], axis=1)
        full = block.shape[1] // self.hop
        hops = rearrange(block[:, : full * self.hop], "c (b s) -> c b s", s=self.hop)
        self._full.append(np.einsum("cbs,cbs->cb", hops, hops, dtype=np.float64))
        self._rest = block[:, full * self.hop :].copy()

    def per_hop(self) -> np.ndarray:
        """`(channels, hops)` float64: one column per hop of the samples so far, the last one maybe partial."""
        tail = np.einsum("cs,cs->c", self._rest, self._rest, dtype=np.float64)[:, None]
        return np.concatenate([*self._full, tail] if self._rest.shape[1] else self._full, axis=1)


def frame_level_db(signal: np.ndarray, hop: int, frame_hops: int) -> np.ndarray:
    """`(channels, samples)` → `(frames,)` dBFS: RMS over `frame_hops` hops centred on each hop, loudest
    channel (see `level_db_from_energy`)."""
    return level_db_from_energy(HopEnergy.of(signal, hop).per_hop(), signal.shape[1], hop, frame_hops)


def level_db_from_energy(energy: np.ndarray, num_samples: int, hop: int, frame_hops: int) -> np.ndarray:
    """Hop energies `(channels, hops)` → `(frames,)` dBFS: RMS over `frame_hops` hops centred on each hop,
    loudest channel.

    Frames at the ends average only the samples that exist, so the first and last phrase are not faded.
    """
    frames = energy.shape[1]
    counts = np.minimum(np.arange(frames + 1) * hop, num_samples)  # samples up to each block edge
    cumulative = np.concatenate([np.zeros((energy.shape[0], 1)), np.cumsum(energy, axis=1)], axis=1)
    index = np.arange(frames)
    lo = np.maximum(index - frame_hops // 2, 0)
    hi = np.minimum(index + frame_hops // 2 + 1, frames)
    mean_square = (cumulative[:, hi] - cumulative[:, lo]).max(axis=0) / (counts[hi] - counts[lo])
    return 20.0 * np.log10(np.maximum(np.sqrt(np.maximum(mean_square, 0.0)), SILENT_RMS))


def hysteresis(level_db: np.ndarray, on_db: float, off_db: float) -> np.ndarray:
    """`(frames,)` bool: on above `on_db`, off below `off_db`, unchanged in between; starts off."""
    decided = np.flatnonzero((level_db > on_db) | (level_db < off_db))
    last_decided = np.full(level_db.size, -1)
    last_decided[decided] = decided
    last_decided = np.maximum.accumulate(last_decided)
    return (last_decided >= 0) & (level_db[np.maximum(last_decided, 0)] > on_db)


def runs(active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start (inclusive) and end (exclusive) frame of each run of True."""
    edges = np.diff(active.astype(np.int8), prepend=0, append=0)
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def bridge_and_drop(
    starts: np.ndarray, ends: np.ndarray, min_gap: float, min_phrase: float
) -> tuple[np.ndarray, np.ndarray]:
    """Join runs separated by fewer than `min_gap` frames, then drop runs shorter than `min_phrase` frames."""
    split = starts[1:] - ends[:-1] >= min_gap
    opens, closes = np.ones(starts.size, dtype=bool), np.ones(starts.size, dtype=bool)
    opens[1:], closes[:-1] = split, split
    starts, ends = starts[opens], ends[closes]
    keep = ends - starts >= min_phrase
    return starts[keep], ends[keep]
