"""Where a preview starts: just before the first sung phrase, found cheaply."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from utils import preview
from utils.preview import (
    LEAD_IN_S,
    PREVIEW_S,
    PreviewWindow,
    first_voice_in_frames,
    first_voice_in_segments,
    preview_window,
    detector_finder,
)

RATE = 8000  # activity detection does not care about the rate; a low one keeps the test songs small


def test_window_starts_a_little_before_the_first_phrase() -> None:
    assert preview_window(41.3, 212.0) == PreviewWindow(41.3 - LEAD_IN_S, 41.3 - LEAD_IN_S + PREVIEW_S, 41.3, 212.0)


def test_window_stays_inside_the_song() -> None:
    assert preview_window(0.5, 200.0).start_s == 0.0  # the voice comes in at once
    late = preview_window(190.0, 200.0)
    assert (late.start_s, late.end_s) == (170.0, 200.0)  # slides back to stay 30 s long
    short = preview_window(3.0, 12.0)
    assert (short.start_s, short.end_s) == (0.0, 12.0)  # a short song is previewed whole


def test_without_voice_the_preview_is_the_start_of_the_song() -> None:
    window = preview_window(None, 200.0)
    assert (window.start_s, window.end_s, window.first_voice_s) == (0.0, PREVIEW_S, None)


def test_window_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        preview_window(1.0, 0.0)


def test_first_voice_from_phrases_or_a_frame_curve() -> None:
    assert first_voice_in_segments([(12.0, 14.0), (3.5, 5.0)]) == 3.5
    assert first_voice_in_segments([]) is None
    times = np.arange(10) * 0.5
    assert first_voice_in_frames(times, np.array([0, 0, 0, 1, 1, 0, 0, 0, 0, 0], bool)) == 1.5
    assert first_voice_in_frames(times, np.zeros(10, bool)) is None


def test_the_detector_finder_answers_with_the_first_phrase_the_detector_finds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    heard: list[tuple[tuple[int, ...], int]] = []

    def detector(mixture: np.ndarray, sample_rate: int) -> SimpleNamespace:
        heard.append((mixture.shape, sample_rate))
        return SimpleNamespace(segments=[(12.5, 14.0), (20.0, 22.0)])

    monkeypatch.setattr(preview, "detect_voice", detector)
    mixture = np.zeros((2, 30 * RATE), dtype=np.float32)
    assert detector_finder()(mixture, RATE) == 12.5
    assert heard == [((2, 30 * RATE), RATE)]  # the mixture only: nothing is separated

