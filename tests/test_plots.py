"""Plotly figures: what each shows, that they line up, and that they stay light."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import plotly.graph_objects as go
import pytest

from utils.activity import detect_vocal_activity
from utils.plots import DYNAMIC_RANGE_DB, VOCAL_COLOUR, activity_figure, spectrogram_figure, waveform_figure
from utils.sketch import MAX_SPECTROGRAM_COLUMNS, SPECTROGRAM_BANDS

SR = 44100
JSON_BUDGET_BYTES = 300_000


def axis_ms(position: str) -> float:
    """A date-axis position (sent as a date string, see utils.plots) in ms from time 0."""
    return (datetime.fromisoformat(position) - datetime(1970, 1, 1)).total_seconds() * 1000


def test_time_positions_are_date_strings_not_numbers_plotly_would_read_as_years():
    mixture, vocals = song(5)
    activity = detect_vocal_activity(vocals, SR)
    figure = activity_figure(activity)
    assert isinstance(figure.data[0].x0, str) and axis_ms(figure.data[0].x0) > 0


def song(seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Mixture and vocals `(2, samples)`: noise "music" with a 220 Hz "voice" 2 s on, 3 s off."""
    rng = np.random.default_rng(0)
    period = 5 * SR
    music = (0.05 * rng.standard_normal((2, period))).astype(np.float32)
    voice = np.zeros((2, period), dtype=np.float32)
    voice[:, : 2 * SR] = 0.2 * np.sin(2 * np.pi * 220 * np.arange(2 * SR) / SR)
    reps = int(np.ceil(seconds / 5))
    num = round(seconds * SR)
    vocals = np.tile(voice, (1, reps))[:, :num]
    return np.tile(music, (1, reps))[:, :num] + vocals, vocals


@pytest.fixture(scope="module")
def twenty_seconds():
    mixture, vocals = song(20.0)
    return mixture, vocals, detect_vocal_activity(vocals, SR)


@pytest.fixture(scope="module")
def figures(twenty_seconds):
    mixture, vocals, activity = twenty_seconds
    return {
        "waveform": waveform_figure(mixture, vocals, SR, activity),
        "spectrogram": spectrogram_figure(mixture, vocals, SR),
        "activity": activity_figure(activity),
    }


def rects(fig: go.Figure) -> list:
    return [shape for shape in fig.layout.shapes if shape.type == "rect"]


def test_waveform_shows_mixture_and_vocal_envelopes(figures):
    names = [trace.name for trace in figures["waveform"].data]
    assert names == ["Mixture", "Mixture", "Vocals", "Vocals"]  # upper and lower edge of each envelope
    assert all(len(trace.y) <= 2000 for trace in figures["waveform"].data)


def test_spectrogram_stacks_mixture_over_vocals_in_whole_db(figures):
    heatmaps = figures["spectrogram"].data
    assert [trace.name for trace in heatmaps] == ["Mixture", "Vocals"]
    for trace in heatmaps:
        z = np.asarray(trace.z)
        assert (
            z.dtype == np.int8 and z.shape[0] == SPECTROGRAM_BANDS and z.shape[1] <= MAX_SPECTROGRAM_COLUMNS
        )
        assert z.min() >= -DYNAMIC_RANGE_DB and z.max() <= 0
    assert np.asarray(heatmaps[0].z).max() == 0  # the mixture's loudest cell is the reference


def test_activity_figure_draws_the_level_and_both_thresholds(twenty_seconds, figures):
    activity = twenty_seconds[2]
    lines = [shape.y0 for shape in figures["activity"].layout.shapes if shape.type == "line"]
    assert [trace.name for trace in figures["activity"].data] == ["vocal level"]
    assert lines == [activity.on_threshold_db, activity.off_threshold_db]


@pytest.mark.parametrize("name", ["waveform", "spectrogram", "activity"])
def test_every_figure_spans_exactly_the_song(figures, name):
    for axis in ("xaxis", "xaxis2"):
        if axis in figures[name].layout and figures[name].layout[axis].type is not None:
            assert tuple(map(axis_ms, figures[name].layout[axis].range)) == (0, 20_000.0)


@pytest.mark.parametrize("name", ["waveform", "activity"])
def test_one_shaded_band_per_phrase(twenty_seconds, figures, name):
    segments = twenty_seconds[2].segments
    assert len(segments) == 4
    assert [(axis_ms(shape.x0), axis_ms(shape.x1)) for shape in rects(figures[name])] == [
        (1e3 * a, 1e3 * b) for a, b in segments
    ]


def test_the_voice_has_one_colour_everywhere(figures):
    vocal_envelope = figures["waveform"].data[2]
    assert vocal_envelope.line.color == VOCAL_COLOUR
    assert figures["activity"].data[0].line.color == VOCAL_COLOUR
    assert figures["spectrogram"].data[1].colorscale[-1][1] == VOCAL_COLOUR
    assert {shape.fillcolor for fig in figures.values() for shape in rects(fig)} == {VOCAL_COLOUR}


def test_ten_minute_figures_stay_under_300_kb():
    mixture, vocals = song(600.0)
    activity = detect_vocal_activity(vocals, SR)
    for fig in (
        waveform_figure(mixture, vocals, SR, activity),
        spectrogram_figure(mixture, vocals, SR),
        activity_figure(activity),
    ):
        assert len(fig.to_json()) < JSON_BUDGET_BYTES


def test_mixture_and_vocals_of_different_lengths_are_refused(twenty_seconds):
    mixture, vocals, activity = twenty_seconds
    with pytest.raises(ValueError):
        waveform_figure(mixture, vocals[:, :-1], SR, activity)
