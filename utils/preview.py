"""A quick preview: about 30 s of the song, starting just before the voice comes in.

Intros can be long, and a preview of an intro says nothing about a vocal separator. So a preview finds the
first sung phrase, then separates `PREVIEW_S` seconds from `LEAD_IN_S` before it. Finding the phrase is
a `VoiceFinder`: any function `(mixture (2, samples), sample_rate) -> first voice in seconds or None`; the
app's is `detector_finder()`, the learned voice detector on the mixture (no separation needed).

    window = preview_window(first_voice_s=41.3, duration_s=212.0)     # PreviewWindow(39.8, 69.8, 41.3, 212.0)
    window = plan_preview(mixture, 44100, detector_finder())
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from utils.voice_detector import detect_voice

logger = logging.getLogger(__name__)

# LALAL.AI-style previews last about a minute; 30 s is enough to judge a voice and fits "a few seconds" of
# separation on a GPU.
PREVIEW_S = 30.0
# Start a little before the first phrase, so the voice is heard coming in over the band.
LEAD_IN_S = 1.5

VoiceFinder = Callable[[np.ndarray, int], float | None]
"""`finder(mixture (2, samples), sample_rate)` → when the first sung phrase starts, in seconds, or None."""



@dataclass(frozen=True)
class PreviewWindow:
    """The part of a song a preview separates, in seconds."""

    start_s: float
    end_s: float
    first_voice_s: float | None  # None: no voice found, the preview is the song's first PREVIEW_S seconds
    song_duration_s: float

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s


def preview_window(
    first_voice_s: float | None, duration_s: float, *, length_s: float = PREVIEW_S, lead_in_s: float = LEAD_IN_S
) -> PreviewWindow:
    """`length_s` seconds from `lead_in_s` before the first voice, kept inside `[0, duration_s]`.

    Near the end of the song the window slides back so it stays `length_s` long; a song shorter than that
    is previewed whole. Without a voice the preview starts at 0.
    """
    if duration_s <= 0 or length_s <= 0 or lead_in_s < 0:
        raise ValueError(f"need duration_s > 0, length_s > 0 and lead_in_s >= 0, got {duration_s}, {length_s}, "
                         f"{lead_in_s}")
    wanted = 0.0 if first_voice_s is None else first_voice_s - lead_in_s
    start = max(0.0, min(wanted, duration_s - length_s))
    return PreviewWindow(start, min(duration_s, start + length_s), first_voice_s, duration_s)


def first_voice_in_segments(segments: Sequence[tuple[float, float]]) -> float | None:
    """Start of the earliest phrase `(start_s, end_s)`, or None without any."""
    return min((start for start, _ in segments), default=None)


def first_voice_in_frames(frame_times_s: np.ndarray, active: np.ndarray) -> float | None:
    """Time of the first voiced frame of a frame curve `(frames,)` / `(frames,)` bool, or None."""
    voiced = np.flatnonzero(active)
    return float(frame_times_s[voiced[0]]) if voiced.size else None


def detector_finder() -> VoiceFinder:
    """A `VoiceFinder` that asks the learned mixture-only voice detector where the first phrase starts: no
    separation needed, about 1 s of CPU for a 3-minute song."""

    def find(mixture: np.ndarray, sample_rate: int) -> float | None:
        return first_voice_in_segments(detect_voice(mixture, sample_rate).segments)

    return find


def plan_preview(
    mixture: np.ndarray, sample_rate: int, finder: VoiceFinder, *, length_s: float = PREVIEW_S,
    lead_in_s: float = LEAD_IN_S,
) -> PreviewWindow:
    """Where the preview of `mixture` (2, samples) lies: `preview_window` around what `finder` hears."""
    duration_s = mixture.shape[1] / sample_rate
    return preview_window(finder(mixture, sample_rate), duration_s, length_s=length_s, lead_in_s=lead_in_s)
