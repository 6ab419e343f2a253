"""Plotly figures of a separation: waveforms, spectrograms and vocal activity on one time axis.

Every figure spans exactly the song, `[0, duration]`, with the same plot-area margins, so stacked figures line
up column for column. The time axis is a Plotly date axis counting milliseconds from 1970-01-01 (positions,
shapes and ranges are sent as date strings, steps `dx` in ms), which gives `mm:ss` ticks and `mm:ss.ss` hover without sending any labels. Data travel
as NumPy arrays, which Plotly serialises as base64 typed arrays (float32 curves, int8 dB spectrograms), and
evenly spaced points use `x0`/`dx` instead of an x array: each figure of a 10-minute song stays under 300 kB.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from utils.activity import SILENT_RMS, VocalActivity
from utils.sketch import (
    FREQ_MIN_HZ,
    MAX_CURVE_POINTS,
    SongSketch,
    bin_starts,
    log_band_weights,
)

EPOCH = datetime(1970, 1, 1)  # time 0 of the date axis

# One colour for the voice everywhere (envelope, level curve, shading, spectrogram); the mixture stays grey.
VOCAL_COLOUR = "#c2185b"
VOCAL_FILL = "rgba(194, 24, 91, 0.55)"
MIXTURE_COLOUR = "#9e9e9e"
MIXTURE_FILL = "rgba(158, 158, 158, 0.45)"
# Dark grey ink: threshold lines, and the loud end of the mixture spectrogram.
INK_COLOUR = "#424242"
GRID_COLOUR = "#e6e6e6"
# Phrase shading is light enough to read the curves through it.
SHADE_OPACITY = 0.12

# Fixed margins (no auto-expansion) keep the plot areas of all figures the same width; the right margin holds
# the spectrogram's colour bars.
MARGIN = {"l": 56, "r": 72, "t": 28, "b": 32, "autoexpand": False}
WAVEFORM_HEIGHT_PX = 260
ACTIVITY_HEIGHT_PX = 240
SPECTROGRAM_HEIGHT_PX = 360
FONT_SIZE = 11

# Half-decade frequency ticks: readable on a panel about 130 px high.
FREQ_TICKS_HZ = (100, 300, 1000, 3000, 10000)
# dB range below the mixture's loudest cell; values are rounded to whole dB (int8).
DYNAMIC_RANGE_DB = 80
# Level-curve axis: from the silent floor of `utils.activity` (−100 dBFS) to full scale.
LEVEL_RANGE_DB = (20.0 * np.log10(SILENT_RMS), 0.0)


def waveform_figure(
    mixture: np.ndarray, vocals: np.ndarray, sample_rate: int, activity: VocalActivity
) -> go.Figure:
    """Peak envelopes of the mixture and the vocals `(channels, samples)`, sung phrases shaded."""
    _check_pair(mixture, vocals)
    return sketch_waveform_figure(SongSketch.of(mixture, vocals, sample_rate), activity)


def spectrogram_figure(mixture: np.ndarray, vocals: np.ndarray, sample_rate: int) -> go.Figure:
    """Log-frequency spectrograms of the mixture (top) and the vocals (bottom) `(channels, samples)`, in dB.

    Both share one reference, the mixture's loudest cell (0 dB), and show 80 dB below it.
    """
    _check_pair(mixture, vocals)
    return sketch_spectrogram_figure(SongSketch.of(mixture, vocals, sample_rate))


def sketch_waveform_figure(sketch: SongSketch, activity: VocalActivity) -> go.Figure:
    """Peak envelopes of the mixture and the vocals, sung phrases shaded."""
    duration_s = sketch.num_samples / sketch.sample_rate
    fig = go.Figure(layout=_layout(duration_s, WAVEFORM_HEIGHT_PX))
    peak = 1.0  # full scale, unless the audio goes beyond it
    for name, signal, colour, fill in (
        ("Mixture", "mixture", MIXTURE_COLOUR, MIXTURE_FILL),
        ("Vocals", "vocals", VOCAL_COLOUR, VOCAL_FILL),
    ):
        low, high = sketch.envelope(signal)
        peak = max(peak, float(high.max()), float(-low.min()))
        x0, dx = _bin_centres_ms(duration_s, low.size)
        line = {"color": colour, "width": 0.5}
        fig.add_scatter(
            y=high,
            x0=x0,
            dx=dx,
            mode="lines",
            line=line,
            name=name,
            legendgroup=name,
            showlegend=False,
            hovertemplate="peak %{y:.2f}",
        )
        fig.add_scatter(
            y=low,
            x0=x0,
            dx=dx,
            mode="lines",
            line=line,
            name=name,
            legendgroup=name,
            fill="tonexty",
            fillcolor=fill,
            hoverinfo="skip",
        )
    fig.update_yaxes(range=[-peak, peak], title_text="amplitude")
    _shade_phrases(fig, activity.segments)
    return fig

def sketch_spectrogram_figure(sketch: SongSketch) -> go.Figure:
    """Log-frequency spectrograms of the mixture (top) and the vocals (bottom), in dB."""
    duration_s = sketch.num_samples / sketch.sample_rate
    centres_hz, _ = log_band_weights(sketch.sample_rate)
    mixture_power = sketch.band_power("mixture")
    vocals_power = sketch.band_power("vocals")
    reference = max(float(mixture_power.max()), np.finfo(np.float32).tiny)
    x0, dx = _bin_centres_ms(duration_s, mixture_power.shape[1])
    clock = _clock_format(duration_s)

    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, subplot_titles=("Mixture", "Vocals")
    )
    for row, (name, power, colour) in enumerate(
        (("Mixture", mixture_power, INK_COLOUR), ("Vocals", vocals_power, VOCAL_COLOUR)), start=1
    ):
        domain = fig.get_subplot(row, 1).yaxis.domain
        fig.add_heatmap(
            z=_to_db(power, reference),
            x0=x0,
            dx=dx,
            y=centres_hz.astype(np.float32),
            name=name,
            zmin=-DYNAMIC_RANGE_DB,
            zmax=0,
            colorscale=[[0.0, "#ffffff"], [1.0, colour]],
            colorbar={
                "title": {"text": "dB"},
                "len": domain[1] - domain[0],
                "y": (domain[0] + domain[1]) / 2,
                "thickness": 10,
                "x": 1.01,
                "xanchor": "left",
            },
            hovertemplate=f"%{{x|{clock}.%2f}}  %{{y:.0f}} Hz  %{{z}} dB<extra>{name}</extra>",
            row=row,
            col=1,
        )
        fig.update_yaxes(
            type="log",
            range=np.log10([FREQ_MIN_HZ, centres_hz[-1]]),
            tickvals=FREQ_TICKS_HZ,
            ticktext=[f"{hz // 1000}k" if hz >= 1000 else str(hz) for hz in FREQ_TICKS_HZ],
            title_text="Hz",
            row=row,
            col=1,
        )
    fig.layout.annotations[1].font.color = VOCAL_COLOUR  # the "Vocals" panel title
    fig.update_layout(_layout(duration_s, SPECTROGRAM_HEIGHT_PX), hovermode="closest")
    fig.update_xaxes(_time_axis(duration_s))
    return fig




def activity_figure(activity: VocalActivity) -> go.Figure:
    """Where the voice is: the learned detector's voice probability (when it decided) or the vocal level curve
    with its on/off thresholds, sung phrases shaded."""
    fig = go.Figure(layout=_layout(activity.duration_s, ACTIVITY_HEIGHT_PX))
    learned = activity.voice_probability is not None
    curve = activity.voice_probability if learned else activity.level_db
    starts = bin_starts(curve.size, MAX_CURVE_POINTS)
    x0, dx = _bin_centres_ms(activity.duration_s, starts.size)
    fig.add_scatter(
        y=np.maximum.reduceat(curve, starts).astype(np.float32),
        x0=x0,
        dx=dx,
        mode="lines",
        line={"color": VOCAL_COLOUR, "width": 1},
        name="voice probability" if learned else "vocal level",
        hovertemplate="%{y:.2f}" if learned else "%{y:.1f} dBFS",
    )
    if not learned:
        for label, level, dash in (
            ("on", activity.on_threshold_db, "dash"),
            ("off", activity.off_threshold_db, "dot"),
        ):
            fig.add_hline(
                y=level,
                line={"color": INK_COLOUR, "width": 1, "dash": dash},
                annotation_text=f"{label} {level:.0f} dBFS",
                annotation_position="top right",
                annotation_font={"size": FONT_SIZE - 1, "color": INK_COLOUR},
            )
    fig.update_yaxes(range=(0.0, 1.0) if learned else LEVEL_RANGE_DB,
                     title_text="voice probability" if learned else "dBFS")
    _shade_phrases(fig, activity.segments)
    return fig


def _check_pair(mixture: np.ndarray, vocals: np.ndarray) -> None:
    if mixture.ndim != 2 or mixture.shape[1] == 0 or vocals.shape != mixture.shape:
        raise ValueError(
            "mixture and vocals must be (channels, samples) of one shape, "
            f"got {mixture.shape} and {vocals.shape}"
        )


def _layout(duration_s: float, height_px: int) -> dict:
    """What all figures share: size, margins, fonts, legend on top, and the time axis."""
    return {
        "template": "none",
        "height": height_px,
        "margin": MARGIN,
        "font": {"size": FONT_SIZE},
        "plot_bgcolor": "white",
        "paper_bgcolor": "white",
        "hovermode": "x unified",
        "legend": {"orientation": "h", "x": 0, "y": 1, "xanchor": "left", "yanchor": "bottom"},
        "xaxis": _time_axis(duration_s),
        "yaxis": {"gridcolor": GRID_COLOUR, "zeroline": False},
    }


def _time_axis(duration_s: float) -> dict:
    """Date axis in ms from 0, spanning the song: `mm:ss` ticks, hundredths when zoomed in or hovering."""
    clock = _clock_format(duration_s)
    return {
        "type": "date",
        "range": [_date(0.0), _date(1000.0 * duration_s)],
        "tickformatstops": [
            {"dtickrange": [None, 1000], "value": f"{clock}.%2f"},
            {"dtickrange": [1000, None], "value": clock},
        ],
        "hoverformat": f"{clock}.%2f",
        "gridcolor": GRID_COLOUR,
        "zeroline": False,
    }


def _clock_format(duration_s: float) -> str:
    return "%H:%M:%S" if duration_s >= 3600 else "%M:%S"


def _shade_phrases(fig: go.Figure, segments: list[tuple[float, float]]) -> None:
    """One full-height rectangle in the vocal colour per phrase, under the curves."""
    fig.update_layout(
        shapes=[
            *fig.layout.shapes,
            *(
                {
                    "type": "rect",
                    "xref": "x",
                    "yref": "paper",
                    "x0": _date(1000.0 * start),
                    "x1": _date(1000.0 * end),
                    "y0": 0,
                    "y1": 1,
                    "fillcolor": VOCAL_COLOUR,
                    "opacity": SHADE_OPACITY,
                    "line": {"width": 0},
                    "layer": "below",
                }
                for start, end in segments
            ),
        ]
    )


def _bin_centres_ms(duration_s: float, bins: int) -> tuple[str, float]:
    """`x0` (as a date string) and `dx` in ms of `bins` equal bins over the song."""
    width = 1000.0 * duration_s / bins
    return _date(width / 2), width


def _date(ms: float) -> str:
    """A time on the axis as a date string: plotly.js reads a bare 2- or 4-digit number on a date axis as a
    year, so numeric positions like 10 (ms) land in the year 2010."""
    return (EPOCH + timedelta(milliseconds=ms)).isoformat(sep=" ", timespec="microseconds")


def _to_db(power: np.ndarray, reference: float) -> np.ndarray:
    """Power → whole dB relative to `reference`, clipped to `[−DYNAMIC_RANGE_DB, 0]`, int8."""
    db = 10.0 * np.log10(np.maximum(power / reference, 10.0 ** (-DYNAMIC_RANGE_DB / 10)))
    return np.round(np.minimum(db, 0.0)).astype(np.int8)
