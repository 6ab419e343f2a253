"""A drum kit in pure numpy: kicks and toms from pitched decays, snares, claps, hats and cymbals from noise.

Hits are ``Note`` objects whose pitch is a General MIDI drum number (36 kick, 38 snare, 42 closed hat...).
Every piece is synthesised a few times with different noise and hits pick one at random, so repeated hits
are not sample-identical. Cymbals are full-band noise with a metallic component, as on real kits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import signal

from utils.synth.dsp import butter_sos, pan
from utils.synth.theory import Note

KITS = ("acoustic", "electronic")
VARIANTS_PER_PIECE = 3
VELOCITY_EXPONENT = 1.5
# 808-style metallic oscillator frequencies (Hz) for hats and cymbals.
METAL_FREQS_HZ = (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)

GM_PIECES = {
    35: "kick",
    36: "kick",
    37: "stick",
    38: "snare",
    39: "clap",
    40: "snare",
    41: "tom_low",
    43: "tom_low",
    42: "hat_closed",
    44: "hat_closed",
    45: "tom_mid",
    46: "hat_open",
    47: "tom_mid",
    48: "tom_high",
    49: "crash",
    50: "tom_high",
    51: "ride",
    57: "crash",
    59: "ride",
}
PIECE_PANS = {
    "kick": 0.0,
    "snare": 0.05,
    "stick": 0.05,
    "clap": 0.0,
    "hat_closed": 0.35,
    "hat_open": 0.35,
    "ride": -0.35,
    "crash": -0.25,
    "tom_high": 0.25,
    "tom_mid": -0.05,
    "tom_low": -0.3,
}
TOM_PITCHES_HZ = {"tom_high": 165.0, "tom_mid": 125.0, "tom_low": 92.0}


def render_drums(
    rng: np.random.Generator, hits: Sequence[Note], kit: str, num_samples: int, sample_rate: int
) -> np.ndarray:
    """Render drum ``hits`` with ``kit`` (one of ``KITS``) into ``(2, samples)`` float64."""
    electronic = kit == "electronic"
    used = sorted({GM_PIECES[hit.pitch] for hit in hits if hit.pitch in GM_PIECES})
    sounds = {
        piece: [
            pan(np.stack([one_shot, one_shot]), PIECE_PANS[piece])
            for one_shot in (_PIECES[piece](rng, sample_rate, electronic) for _ in range(VARIANTS_PER_PIECE))
        ]
        for piece in used
    }
    out = np.zeros((2, num_samples))
    for hit in hits:
        start = round(hit.start_s * sample_rate)
        if start >= num_samples or hit.pitch not in GM_PIECES:
            continue
        variants = sounds[GM_PIECES[hit.pitch]]
        sound = variants[rng.integers(len(variants))]
        length = min(sound.shape[1], num_samples - start)
        out[:, start : start + length] += hit.velocity**VELOCITY_EXPONENT * sound[:, :length]
    return out


def _times(duration_s: float, sample_rate: int) -> np.ndarray:
    return np.arange(round(duration_s * sample_rate)) / sample_rate


def _filtered_noise(
    rng: np.random.Generator, size: int, cutoff: float | tuple[float, float], btype: str, sample_rate: int
) -> np.ndarray:
    """Unit-RMS white noise through a 2nd-order Butterworth filter."""
    noise = signal.sosfilt(butter_sos(2, cutoff, btype, sample_rate), rng.standard_normal(size))
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def _sweep(times: np.ndarray, start_hz: float, end_hz: float, sweep_s: float, phase: float) -> np.ndarray:
    """A sine whose frequency glides exponentially from ``start_hz`` to ``end_hz``."""
    freq = end_hz + (start_hz - end_hz) * np.exp(-times / sweep_s)
    dt = times[1] - times[0] if times.size > 1 else 1.0
    return np.sin(2.0 * np.pi * (phase + np.cumsum(freq) * dt))


def _metal(rng: np.random.Generator, times: np.ndarray, cutoff_hz: float, sample_rate: int) -> np.ndarray:
    """Unit-RMS metallic noise: detuned square waves high-passed, for hats and cymbals."""
    detune = rng.uniform(0.97, 1.03)
    squares = sum(np.sign(np.sin(2.0 * np.pi * (f * detune * times + rng.random()))) for f in METAL_FREQS_HZ)
    metal = signal.sosfilt(butter_sos(2, cutoff_hz, "highpass", sample_rate), squares)
    return metal / (np.sqrt(np.mean(metal**2)) + 1e-12)


def _kick(rng: np.random.Generator, sample_rate: int, electronic: bool) -> np.ndarray:
    times = _times(1.2 if electronic else 0.5, sample_rate)
    if electronic:
        body = np.tanh(1.5 * _sweep(times, 90.0, 45.0, 0.02, 0.0)) * np.exp(-times / 0.45)
    else:
        body = _sweep(times, rng.uniform(100, 130), rng.uniform(45, 60), 0.03, 0.0) * np.exp(-times / 0.16)
    click = 0.3 * _filtered_noise(rng, times.size, 2000.0, "highpass", sample_rate) * np.exp(-times / 0.002)
    return body + click


def _snare(rng: np.random.Generator, sample_rate: int, electronic: bool) -> np.ndarray:
    times = _times(0.6, sample_rate)
    tone = (np.sin(2 * np.pi * 185.0 * times) + 0.6 * np.sin(2 * np.pi * 330.0 * times)) * np.exp(
        -times / 0.05
    )
    body = _filtered_noise(rng, times.size, (800.0, 5000.0), "bandpass", sample_rate)
    sizzle = _filtered_noise(rng, times.size, 5000.0, "highpass", sample_rate)
    decay = 0.18 if electronic else rng.uniform(0.08, 0.14)
    return 0.6 * tone + (0.5 * body + 0.2 * sizzle) * np.exp(-times / decay)


def _stick(rng: np.random.Generator, sample_rate: int, electronic: bool) -> np.ndarray:
    times = _times(0.15, sample_rate)
    click = _filtered_noise(rng, times.size, (1500.0, 8000.0), "bandpass", sample_rate) * np.exp(
        -times / 0.008
    )
    return click + 0.5 * np.sin(2 * np.pi * 820.0 * times) * np.exp(-times / 0.02)


def _clap(rng: np.random.Generator, sample_rate: int, electronic: bool) -> np.ndarray:
    times = _times(0.4, sample_rate)
    noise = _filtered_noise(rng, times.size, (700.0, 5000.0), "bandpass", sample_rate)
    bursts = sum(
        np.exp(-np.clip(times - k * 0.011, 0.0, None) / 0.004) * (times >= k * 0.011) for k in range(3)
    )
    tail = np.exp(-np.clip(times - 0.033, 0.0, None) / 0.09) * (times >= 0.033)
    return noise * (bursts + tail)


def _hat(rng: np.random.Generator, sample_rate: int, decay_s: float, duration_s: float) -> np.ndarray:
    times = _times(duration_s, sample_rate)
    noise = _filtered_noise(rng, times.size, 7000.0, "highpass", sample_rate)
    return 0.3 * (noise + _metal(rng, times, 6000.0, sample_rate)) * np.exp(-times / decay_s)


def _hat_closed(rng: np.random.Generator, sample_rate: int, electronic: bool) -> np.ndarray:
    return _hat(rng, sample_rate, 0.02 if electronic else 0.03, 0.2)


def _hat_open(rng: np.random.Generator, sample_rate: int, electronic: bool) -> np.ndarray:
    return _hat(rng, sample_rate, 0.25, 0.9)


def _ride(rng: np.random.Generator, sample_rate: int, electronic: bool) -> np.ndarray:
    times = _times(1.5, sample_rate)
    wash = _filtered_noise(rng, times.size, 4000.0, "highpass", sample_rate) * np.exp(-times / 0.35)
    ping = _metal(rng, times, 2500.0, sample_rate) * np.exp(-times / 0.2)
    return 0.1 * wash + 0.15 * ping


def _crash(rng: np.random.Generator, sample_rate: int, electronic: bool) -> np.ndarray:
    times = _times(2.5, sample_rate)
    noise = _filtered_noise(rng, times.size, 2500.0, "highpass", sample_rate)
    return (0.35 * noise + 0.2 * _metal(rng, times, 3000.0, sample_rate)) * np.exp(-times / 0.7)


def _tom(piece: str) -> Callable[[np.random.Generator, int, bool], np.ndarray]:
    def tom(rng: np.random.Generator, sample_rate: int, electronic: bool) -> np.ndarray:
        times = _times(0.8, sample_rate)
        pitch = TOM_PITCHES_HZ[piece] * rng.uniform(0.97, 1.03)
        body = _sweep(times, 1.4 * pitch, pitch, 0.04, rng.random()) * np.exp(-times / 0.22)
        skin = _filtered_noise(rng, times.size, 1500.0, "highpass", sample_rate) * np.exp(-times / 0.01)
        return body + 0.3 * skin

    return tom


_PIECES: dict[str, Callable[[np.random.Generator, int, bool], np.ndarray]] = {
    "kick": _kick,
    "snare": _snare,
    "stick": _stick,
    "clap": _clap,
    "hat_closed": _hat_closed,
    "hat_open": _hat_open,
    "ride": _ride,
    "crash": _crash,
    **{piece: _tom(piece) for piece in TOM_PITCHES_HZ},
}
