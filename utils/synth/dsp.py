"""Signal-processing helpers shared by the song generator's modules: wavetables, filters, pan, reverb."""

from __future__ import annotations

import functools

import numpy as np
from scipy import signal

NYQUIST_GUARD = 0.45  # filters and partials stay below this share of the sample rate
RT60_DECAY = 6.9  # ln(1000): an amplitude falls by 60 dB over one RT60
REVERB_DAMPING_HZ = 4000.0  # above this the reverb decays faster
REVERB_HIGH_DECAY_RATIO = 0.5  # high band RT60 as a share of the full one


def read_table(tables: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Linear-interpolated lookup at ``phase`` cycles of one-period tables ``(..., size + 1)``.

    The last sample of each table repeats its first (a guard for interpolation). Returns ``(..., samples)``.
    """
    position = (phase % 1.0) * (tables.shape[-1] - 1)
    index = position.astype(np.int64)
    frac = position - index
    lower = tables[..., index]
    return lower + frac * (tables[..., index + 1] - lower)


@functools.lru_cache(maxsize=128)
def butter_sos(
    order: int, cutoff_hz: float | tuple[float, float], btype: str, sample_rate: int
) -> np.ndarray:
    """Second-order sections of a Butterworth filter; cut-offs are kept below Nyquist."""
    nyquist_guard = NYQUIST_GUARD * sample_rate
    if isinstance(cutoff_hz, tuple):
        cutoff: float | tuple[float, float] = (cutoff_hz[0], min(cutoff_hz[1], nyquist_guard))
    else:
        cutoff = min(cutoff_hz, nyquist_guard)
    return signal.butter(order, cutoff, btype=btype, fs=sample_rate, output="sos")


def pan(stereo: np.ndarray, position: float) -> np.ndarray:
    """Constant-power balance of ``(2, samples)`` to ``position`` in [-1 (left), 1 (right)]; unity at 0."""
    angle = 0.25 * np.pi * (position + 1.0)
    gains = np.sqrt(2.0) * np.array([np.cos(angle), np.sin(angle)])
    return stereo * gains[:, None]


def reverb_ir(rng: np.random.Generator, rt60_s: float, pre_delay_s: float, sample_rate: int) -> np.ndarray:
    """Stereo ``(2, samples)`` impulse response: decorrelated noise decaying exponentially, darker as it goes.

    The full band decays by 60 dB over ``rt60_s``; the band above ``REVERB_DAMPING_HZ`` twice as fast.
    Unit energy per channel; the response is exactly ``pre_delay_s + rt60_s`` long.
    """
    length = round(rt60_s * sample_rate)
    times = np.arange(length) / sample_rate
    noise = rng.standard_normal((2, length))
    high = signal.sosfilt(butter_sos(2, REVERB_DAMPING_HZ, "highpass", sample_rate), noise, axis=1)
    low = noise - high
    decay = np.exp(-RT60_DECAY * times / rt60_s)
    ir = low * decay + high * decay ** (1.0 / REVERB_HIGH_DECAY_RATIO)
    ir /= np.sqrt(np.sum(ir**2, axis=1, keepdims=True))
    return np.pad(ir, ((0, 0), (round(pre_delay_s * sample_rate), 0)))


def reverberate(dry: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """Wet ``(2, samples)``: the mono sum of ``dry`` ``(2, samples)`` through a stereo ``ir``, cut to length.

    Convolves in single precision, twice as fast and far more precise than a reverb needs.
    """
    mono = dry.mean(axis=0, keepdims=True).astype(np.float32)
    wet = signal.fftconvolve(mono, ir.astype(np.float32), axes=1)[:, : dry.shape[1]]
    return wet.astype(np.float64)


def rms(x: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Root mean square of ``(channels, samples)`` over all channels, optionally on masked samples only."""
    if mask is not None:
        x = x[:, mask]
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def shelf_eq(audio: np.ndarray, low_db: float, high_db: float, low_hz: float, high_hz: float, sample_rate: int) -> np.ndarray:
    """``audio`` ``(channels, samples)`` with its band under ``low_hz`` and over ``high_hz`` changed by the gains.

    Each shelf adds ``(gain - 1)`` times the Butterworth-filtered band to the signal: cheap, causal and smooth.
    """
    out = audio.copy()
    for gain_db, cutoff, btype in ((low_db, low_hz, "lowpass"), (high_db, high_hz, "highpass")):
        band = signal.sosfilt(butter_sos(2, cutoff, btype, sample_rate), audio, axis=-1)
        out += (10.0 ** (gain_db / 20.0) - 1.0) * band
    return out


def compressor_gain(
    audio: np.ndarray, threshold_db: float, ratio: float, time_s: float, sample_rate: int
) -> np.ndarray:
    """``(samples,)`` gain of a feed-forward RMS compressor driven by ``audio`` ``(channels, samples)``.

    The level is the channel-mean power smoothed by a one-pole filter of time constant ``time_s``; above
    ``threshold_db`` (dBFS) the output rises by 1/``ratio`` dB per dB. The gain is never above one.
    """
    coefficient = np.exp(-1.0 / (time_s * sample_rate))
    power = signal.lfilter([1.0 - coefficient], [1.0, -coefficient], np.mean(np.square(audio), axis=0))
    level_db = 10.0 * np.log10(np.maximum(power, 1e-12))
    reduction_db = np.maximum(level_db - threshold_db, 0.0) * (1.0 - 1.0 / ratio)
    return 10.0 ** (-reduction_db / 20.0)
