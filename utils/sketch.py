"""What the waveform and spectrogram plots need of a song, gathered block by block (numpy only, no plotly).

A sketch holds, for the mixture and the vocals, the lowest and highest sample in each of `MAX_CURVE_POINTS`
bins and the mean power in `SPECTROGRAM_BANDS` log-frequency bands per spectrogram column: a few MB whatever
the song's length. `utils.plots` draws the figures from it.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

SIGNALS = ("mixture", "vocals")
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

class SongSketch:
    """What the waveform and spectrogram figures need of a song, gathered block by block.

    Feed the mixture and the vocals as `(channels, n)` blocks in order (`add`); the song's length must be
    known up front, since it sets the bins. Memory: a few MB whatever the length.
    """

    def __init__(self, num_samples: int, sample_rate: int) -> None:
        if num_samples <= 0:
            raise ValueError(f"a sketch needs samples, got {num_samples}")
        self.num_samples = num_samples
        self.sample_rate = sample_rate
        self._envelopes = {name: _Envelope(num_samples) for name in SIGNALS}
        _, weights = log_band_weights(sample_rate)
        self._spectra = {name: _BandPower(num_samples, weights) for name in SIGNALS}
        self._added = 0

    @classmethod
    def of(cls, mixture: np.ndarray, vocals: np.ndarray, sample_rate: int) -> SongSketch:
        """The sketch of two whole `(channels, samples)` signals."""
        sketch = cls(mixture.shape[1], sample_rate)
        sketch.add(mixture, vocals)
        return sketch

    def add(self, mixture: np.ndarray, vocals: np.ndarray) -> None:
        """The next samples of both signals, `(channels, n)` each."""
        if mixture.ndim != 2 or vocals.shape != mixture.shape:
            raise ValueError(f"mixture and vocals must be (channels, n) of one shape, got {mixture.shape} and {vocals.shape}")
        for name, block in (("mixture", mixture), ("vocals", vocals)):
            self._envelopes[name].add(self._added, block)
            self._spectra[name].add(block)
        self._added += mixture.shape[1]

    def envelope(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest sample per bin of `name` ("mixture" or "vocals"), float32 `(bins,)` each."""
        envelope = self._envelopes[name]
        return envelope.low.astype(np.float32), envelope.high.astype(np.float32)

    def band_power(self, name: str) -> np.ndarray:
        """`(bands, columns)` float32 mean power of `name` ("mixture" or "vocals")."""
        return self._spectra[name].columns()


class _Envelope:
    """Lowest and highest sample (over channels) in each of `MAX_CURVE_POINTS` bins of a signal."""

    def __init__(self, num_samples: int) -> None:
        self.starts = bin_starts(num_samples, MAX_CURVE_POINTS)
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
        self.column_starts = bin_starts(self.frames, MAX_SPECTROGRAM_COLUMNS)
        self.power = np.zeros((self.column_starts.size, weights.shape[0]))
        self._window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann
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



def bin_starts(length: int, max_bins: int) -> np.ndarray:
    """First index of each of `min(max_bins, length)` near-equal bins over `length` items."""
    bins = min(max_bins, length)
    return np.arange(bins) * length // bins


def log_band_weights(sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
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


