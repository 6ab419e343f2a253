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
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view
from plotly.subplots import make_subplots
from scipy.signal import get_window

from utils.activity import SILENT_RMS, VocalActivity

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

# About one point per pixel column of a wide screen; curves are min/max (waveform) or max (level) per bin.
MAX_CURVE_POINTS = 2000
# Spectrogram resolution sent to the browser: time columns × log-frequency rows. 96 rows is about one per
# pixel of a panel of the figure's height; 600 × 96 int8 cells per panel keep the figure near 200 kB.
MAX_SPECTROGRAM_COLUMNS = 600
SPECTROGRAM_BANDS = 96
# 4096-point Hann frames (93 ms at 44.1 kHz, 10.8 Hz bins), power averaged over each column.
N_FFT = 4096
# Frames per column the hop aims at, within [N_FFT / 4, N_FFT]: short clips get 75 % overlap; from about
# 4 minutes on, frames lie side by side and a song costs one FFT per N_FFT samples.
FRAMES_PER_COLUMN = 4
# Frames per FFT call: bounds the working memory to a few tens of MB whatever the song's length.
STFT_CHUNK_FRAMES = 1024
# Log-frequency rows from 50 Hz (below the lowest sung fundamental) to 16 kHz (above sibilance; lossy sources
# often stop there). Log frequency rather than mel: octaves get equal height, as musicians read pitch. Rows
# narrower than an FFT bin (below about 240 Hz) are widened to one bin, i.e. interpolated.
FREQ_MIN_HZ = 50.0
FREQ_MAX_HZ = 16000.0
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
    return PlotSketch.of(mixture, vocals, sample_rate).waveform_figure(activity)


def spectrogram_figure(mixture: np.ndarray, vocals: np.ndarray, sample_rate: int) -> go.Figure:
    """Log-frequency spectrograms of the mixture (top) and the vocals (bottom) `(channels, samples)`, in dB.

    Both share one reference, the mixture's loudest cell (0 dB), and show 80 dB below it.
    """
    return PlotSketch.of(mixture, vocals, sample_rate).spectrogram_figure()


class PlotSketch:
    """What the waveform and spectrogram figures need of a song, gathered block by block.

    Feed the mixture and the vocals as `(channels, n)` blocks in order (`add`); the song's length must be
    known up front, since it sets the bins. Memory: a few MB whatever the length.
    """

    def __init__(self, num_samples: int, sample_rate: int) -> None:
        if num_samples <= 0:
            raise ValueError(f"a sketch needs samples, got {num_samples}")
        self.num_samples = num_samples
        self.sample_rate = sample_rate
        self._envelopes = {name: _Envelope(num_samples) for name in ("mixture", "vocals")}
        _, weights = _log_band_weights(sample_rate)
        self._spectra = {name: _BandPower(num_samples, weights) for name in ("mixture", "vocals")}
        self._added = 0

    @classmethod
    def of(cls, mixture: np.ndarray, vocals: np.ndarray, sample_rate: int) -> PlotSketch:
        """The sketch of two whole `(channels, samples)` signals."""
        _check_pair(mixture, vocals)
        sketch = cls(mixture.shape[1], sample_rate)
        sketch.add(mixture, vocals)
        return sketch

    def add(self, mixture: np.ndarray, vocals: np.ndarray) -> None:
        """The next samples of both signals, `(channels, n)` each."""
        _check_pair(mixture, vocals)
        for name, block in (("mixture", mixture), ("vocals", vocals)):
            self._envelopes[name].add(self._added, block)
            self._spectra[name].add(block)
        self._added += mixture.shape[1]

    def waveform_figure(self, activity: VocalActivity) -> go.Figure:
        """Peak envelopes of the mixture and the vocals, sung phrases shaded."""
        duration_s = self.num_samples / self.sample_rate
        fig = go.Figure(layout=_layout(duration_s, WAVEFORM_HEIGHT_PX))
        peak = 1.0  # full scale, unless the audio goes beyond it
        for name, envelope, colour, fill in (
            ("Mixture", self._envelopes["mixture"], MIXTURE_COLOUR, MIXTURE_FILL),
            ("Vocals", self._envelopes["vocals"], VOCAL_COLOUR, VOCAL_FILL),
        ):
            low, high = envelope.low.astype(np.float32), envelope.high.astype(np.float32)
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

    def spectrogram_figure(self) -> go.Figure:
        """Log-frequency spectrograms of the mixture (top) and the vocals (bottom), in dB."""
        duration_s = self.num_samples / self.sample_rate
        centres_hz, _ = _log_band_weights(self.sample_rate)
        mixture_power = self._spectra["mixture"].columns()
        vocals_power = self._spectra["vocals"].columns()
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


class _Envelope:
    """Lowest and highest sample (over channels) in each of `MAX_CURVE_POINTS` bins of a signal."""

    def __init__(self, num_samples: int) -> None:
        self.starts = _bin_starts(num_samples, MAX_CURVE_POINTS)
        self.low = np.full(self.starts.size, np.inf)
        self.high = np.full(self.starts.size, -np.inf)

    def add(self, offset: int, block: np.ndarray) -> None:
        """Samples `[offset, offset + n)` as a `(channels, n)` block."""
        if not block.shape[1]:
            return
        first = int(np.searchsorted(self.starts, offset, side="right")) - 1
        last = int(np.searchsorted(self.starts, offset + block.shape[1], side="left"))
        edges = np.maximum(self.starts[first:last] - offset, 0)
        np.minimum.at(self.low, np.arange(first, last), np.minimum.reduceat(block, edges, axis=1).min(axis=0))
        np.maximum.at(self.high, np.arange(first, last), np.maximum.reduceat(block, edges, axis=1).max(axis=0))


class _BandPower:
    """Mean power of the channel average in log-frequency bands, per spectrogram column, block by block.

    Frames are centred Hann windows of N_FFT at a hop set by the song's length (see FRAMES_PER_COLUMN); the
    signal is zero-padded by N_FFT / 2 at both ends.
    """

    def __init__(self, num_samples: int, weights: np.ndarray) -> None:
        self.weights = weights
        self.hop = int(np.clip(num_samples // (MAX_SPECTROGRAM_COLUMNS * FRAMES_PER_COLUMN), N_FFT // 4, N_FFT))
        self.frames = num_samples // self.hop + 1  # frames of the padded signal, one every hop
        self.column_starts = _bin_starts(self.frames, MAX_SPECTROGRAM_COLUMNS)
        self.power = np.zeros((self.column_starts.size, weights.shape[0]))
        self._window = get_window("hann", N_FFT).astype(np.float32)
        self._num_samples = num_samples
        self._pending = np.zeros(N_FFT // 2, dtype=np.float32)  # the padded signal from frame `_next` on
        self._received = 0
        self._next = 0  # the next frame to compute

    def add(self, block: np.ndarray) -> None:
        """The next `(channels, n)` samples; the end padding is added once all samples have come."""
        self._received += block.shape[1]
        parts = [self._pending, block.mean(axis=0).astype(np.float32)]
        if self._received >= self._num_samples:
            parts.append(np.zeros(N_FFT // 2, dtype=np.float32))
        self._pending = np.concatenate(parts)
        ready = min(self.frames - self._next, max(0, (self._pending.size - N_FFT) // self.hop + 1))
        for start in range(0, ready, STFT_CHUNK_FRAMES):
            count = min(STFT_CHUNK_FRAMES, ready - start)
            frames = sliding_window_view(self._pending, N_FFT)[start * self.hop :: self.hop][:count]
            spectrum = scipy.fft.rfft(frames * self._window, axis=-1)
            power = (spectrum.real**2 + spectrum.imag**2) @ self.weights.T
            indices = self._next + start + np.arange(count)
            np.add.at(self.power, np.searchsorted(self.column_starts, indices, side="right") - 1, power)
        self._next += ready
        self._pending = self._pending[ready * self.hop :]

    def columns(self) -> np.ndarray:
        """`(bands, columns)`: the mean power of the frames in each column."""
        counts = np.diff(self.column_starts, append=self.frames)[:, None]
        return (self.power / counts).T.astype(np.float32)


def activity_figure(activity: VocalActivity) -> go.Figure:
    """The vocal level curve with its on/off thresholds, sung phrases shaded."""
    fig = go.Figure(layout=_layout(activity.duration_s, ACTIVITY_HEIGHT_PX))
    starts = _bin_starts(activity.level_db.size, MAX_CURVE_POINTS)
    x0, dx = _bin_centres_ms(activity.duration_s, starts.size)
    fig.add_scatter(
        y=np.maximum.reduceat(activity.level_db, starts).astype(np.float32),
        x0=x0,
        dx=dx,
        mode="lines",
        line={"color": VOCAL_COLOUR, "width": 1},
        name="vocal level",
        hovertemplate="%{y:.1f} dBFS",
    )
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
    fig.update_yaxes(range=LEVEL_RANGE_DB, title_text="dBFS")
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


def _bin_starts(length: int, max_bins: int) -> np.ndarray:
    """First index of each of `min(max_bins, length)` near-equal bins over `length` items."""
    bins = min(max_bins, length)
    return np.arange(bins) * length // bins


def _bin_centres_ms(duration_s: float, bins: int) -> tuple[str, float]:
    """`x0` (as a date string) and `dx` in ms of `bins` equal bins over the song."""
    width = 1000.0 * duration_s / bins
    return _date(width / 2), width


def _date(ms: float) -> str:
    """A time on the axis as a date string: plotly.js reads a bare 2- or 4-digit number on a date axis as a
    year, so numeric positions like 10 (ms) land in the year 2010."""
    return (EPOCH + timedelta(milliseconds=ms)).isoformat(sep=" ", timespec="microseconds")


def _log_band_weights(sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres `(bands,)` in Hz and weights `(bands, N_FFT // 2 + 1)` averaging power over log-spaced bands.

    A weight is the overlap of the FFT bin with the band divided by the band width, so a row is the mean power
    per bin over the band; bands narrower than one bin are widened to one bin around their centre.
    """
    bin_width = sample_rate / N_FFT
    bin_centres = np.arange(N_FFT // 2 + 1) * bin_width
    edges = np.geomspace(FREQ_MIN_HZ, min(FREQ_MAX_HZ, sample_rate / 2), SPECTROGRAM_BANDS + 1)
    centres = np.sqrt(edges[:-1] * edges[1:])
    low = np.minimum(edges[:-1], centres - bin_width / 2)[:, None]
    high = np.maximum(edges[1:], centres + bin_width / 2)[:, None]
    overlap = np.minimum(high, bin_centres + bin_width / 2) - np.maximum(low, bin_centres - bin_width / 2)
    return centres, (np.clip(overlap, 0, None) / (high - low)).astype(np.float32)


def _to_db(power: np.ndarray, reference: float) -> np.ndarray:
    """Power → whole dB relative to `reference`, clipped to `[−DYNAMIC_RANGE_DB, 0]`, int8."""
    db = 10.0 * np.log10(np.maximum(power / reference, 10.0 ** (-DYNAMIC_RANGE_DB / 10)))
    return np.round(np.minimum(db, 0.0)).astype(np.int8)
