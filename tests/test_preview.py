"""Where a preview starts: just before the first sung phrase, found cheaply."""

from __future__ import annotations

import numpy as np
import pytest

from utils.preview import (
    LEAD_IN_S,
    PREVIEW_S,
    PreviewWindow,
    first_voice_in_frames,
    first_voice_in_segments,
    plan_preview,
    preview_window,
    separating_finder,
)

RATE = 8000  # activity detection does not care about the rate; a low one keeps the test songs small


def song_with_voice_from(voice_start_s: float, seconds: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """A stereo mixture: a quiet band all along, a loud 'voice' tone from `voice_start_s`; and its vocals."""
    t = np.arange(round(seconds * RATE)) / RATE
    vocals = 0.4 * np.sin(2 * np.pi * 330 * t) * (t >= voice_start_s)
    band = 0.1 * np.sin(2 * np.pi * 55 * t)
    stereo = lambda mono: np.tile(mono, (2, 1)).astype(np.float32)  # noqa: E731
    return stereo(vocals + band), stereo(vocals)


def oracle_separator(mixture: np.ndarray, vocals: np.ndarray, asked: list[tuple[int, int]]):
    """Stands in for the network, for a finder that asks for consecutive blocks from the start: returns the
    true vocals of each block and logs the sample span it was asked for."""

    def separate(block: np.ndarray) -> np.ndarray:
        start = asked[-1][1] if asked else 0
        np.testing.assert_array_equal(block, mixture[:, start : start + block.shape[1]])
        asked.append((start, start + block.shape[1]))
        return vocals[:, start : start + block.shape[1]]

    return separate


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


def test_separating_finder_hears_the_voice_where_it_starts_and_stops_there() -> None:
    mixture, vocals = song_with_voice_from(21.0)
    asked: list[tuple[int, int]] = []
    window = plan_preview(mixture, RATE, separating_finder(oracle_separator(mixture, vocals, asked)))
    assert window.first_voice_s == pytest.approx(21.0, abs=0.1)
    assert window.start_s == pytest.approx(21.0 - LEAD_IN_S, abs=0.1) and window.length_s == PREVIEW_S
    assert asked == [(0, 8 * RATE), (8 * RATE, 16 * RATE), (16 * RATE, 24 * RATE)]  # 24 of 60 s separated


def test_separating_finder_without_voice_searches_the_whole_song() -> None:
    mixture, vocals = song_with_voice_from(np.inf, seconds=20.0)
    asked: list[tuple[int, int]] = []
    assert separating_finder(oracle_separator(mixture, vocals, asked))(mixture, RATE) is None
    assert asked[-1][1] == mixture.shape[1]


def test_bleed_far_under_the_band_is_not_taken_for_the_voice() -> None:
    mixture, vocals = song_with_voice_from(30.0)
    def leaky(block: np.ndarray) -> np.ndarray:  # only leaks: 26 dB under the mixture, yet above -60 dBFS
        return 0.05 * block

    assert separating_finder(leaky, block_s=8.0)(mixture[:, : 24 * RATE], RATE) is None
