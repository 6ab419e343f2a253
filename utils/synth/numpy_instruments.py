"""Pitched instruments in pure numpy: the dependency-free backend of the song generator.

Each timbre is two band-limited wavetables, a bright one that fades quickly after the attack and a mellow
one that carries the rest of the note, plus an attack noise (pick, hammer, key click, breath) and, for lead
instruments, delayed vibrato. Bright tables keep partials up to ``HARMONIC_CEILING_HZ`` so instruments have
energy as high as the voice does: the backend must not make vocals separable by frequency alone.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import signal

from utils.synth.dsp import NYQUIST_GUARD, butter_sos, read_table
from utils.synth.theory import Note

TABLE_SIZE = 4096
HARMONIC_CEILING_HZ = 18000.0  # bright tables: partials up to here
MELLOW_CEILING_HZ = 6000.0  # mellow tables: the sustained sound has lost its top
REFERENCE_HZ = 261.63  # decay times are given for middle C
RELEASE_DEPTH = 4.6  # releases and decays are cut at exp(-depth), about -40 dB
VELOCITY_EXPONENT = 1.5
BURST_LENGTH_DECAYS = 8.0  # attack noise is cut after this many decay times
ATTACK_NOISE_HIGHPASS_HZ = 1000.0
BREATH_NOISE_HIGHPASS_HZ = 2500.0
VIBRATO_DELAY_S = 0.25
VIBRATO_RATE_HZ = 5.2
PAD_DETUNE_CENTS = 7.0
Partials = tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class Timbre:
    """How one pitched instrument sounds.

    Tables: ``bright``/``mellow`` are either a roll-off exponent (amplitude of partial k is k**-rolloff)
    or explicit ``(harmonic, amplitude)`` partials. Envelopes: the bright table decays with
    ``bright_decay_s``, the mellow one towards ``sustain`` with ``mellow_decay_s``; decays shorten for higher
    notes with ``pitch_decay_exponent``. ``even_weight`` scales the even partials (0 = hollow, clarinet-like).
    """

    bright: float | Partials
    mellow: float | Partials
    attack_s: float = 0.003
    bright_decay_s: float = 0.2
    mellow_decay_s: float = 1.5
    sustain: float = 0.0
    release_s: float = 0.1
    bright_level: float = 0.7
    even_weight: float = 1.0
    pitch_decay_exponent: float = 0.5
    attack_noise: float = 0.05
    attack_noise_decay_s: float = 0.008
    breath_noise: float = 0.0
    vibrato_cents: float = 0.0
    detuned_pair: bool = False


TIMBRES: dict[str, Timbre] = {
    "piano": Timbre(1.1, 2.0, bright_decay_s=0.3, mellow_decay_s=2.5, attack_noise=0.08),
    "epiano": Timbre(
        ((1, 1.0), (6, 0.5), (14, 0.25), (21, 0.1)),
        ((1, 1.0), (2, 0.2), (3, 0.06)),
        bright_decay_s=0.1,
        mellow_decay_s=1.8,
        attack_noise=0.03,
    ),
    "pluck": Timbre(
        1.0,
        2.2,
        bright_decay_s=0.15,
        mellow_decay_s=1.2,
        release_s=0.08,
        attack_noise=0.1,
        attack_noise_decay_s=0.004,
    ),
    "harpsichord": Timbre(
        0.7, 1.2, bright_decay_s=0.4, mellow_decay_s=1.5, attack_noise=0.1, attack_noise_decay_s=0.003
    ),
    "organ": Timbre(
        ((1, 1.0), (2, 0.7), (3, 0.5), (4, 0.35), (6, 0.25), (8, 0.2), (10, 0.1), (12, 0.08), (16, 0.05)),
        ((1, 1.0), (2, 0.7), (3, 0.5), (4, 0.35), (6, 0.25), (8, 0.2)),
        attack_s=0.008,
        bright_decay_s=0.05,
        sustain=1.0,
        release_s=0.05,
        bright_level=0.3,
        pitch_decay_exponent=0.0,
        attack_noise=0.04,
        attack_noise_decay_s=0.002,
    ),
    "pad": Timbre(
        1.2,
        1.7,
        attack_s=0.4,
        bright_decay_s=1.0,
        mellow_decay_s=2.0,
        sustain=0.8,
        release_s=0.5,
        bright_level=0.4,
        pitch_decay_exponent=0.0,
        attack_noise=0.0,
        detuned_pair=True,
    ),
    "bell": Timbre(
        ((1, 1.0), (4, 0.5), (10, 0.3), (16, 0.1)),
        ((1, 1.0), (4, 0.1)),
        bright_decay_s=0.15,
        mellow_decay_s=2.0,
        release_s=0.4,
        attack_noise=0.02,
    ),
    "mallet": Timbre(
        ((1, 1.0), (4, 0.5), (10, 0.2)),
        ((1, 1.0),),
        bright_decay_s=0.05,
        mellow_decay_s=0.5,
        attack_noise=0.1,
        attack_noise_decay_s=0.003,
    ),
    "flute": Timbre(
        ((1, 1.0), (2, 0.3), (3, 0.12), (4, 0.05), (5, 0.02)),
        ((1, 1.0), (2, 0.25), (3, 0.1)),
        attack_s=0.05,
        bright_decay_s=0.1,
        sustain=1.0,
        release_s=0.08,
        bright_level=0.3,
        pitch_decay_exponent=0.0,
        attack_noise=0.05,
        attack_noise_decay_s=0.03,
        breath_noise=0.04,
        vibrato_cents=15.0,
    ),
    "reed": Timbre(
        0.9,
        1.2,
        attack_s=0.03,
        bright_decay_s=0.1,
        sustain=1.0,
        release_s=0.06,
        even_weight=0.3,
        pitch_decay_exponent=0.0,
        attack_noise=0.03,
        breath_noise=0.01,
        vibrato_cents=12.0,
    ),
    "bowed": Timbre(
        1.0,
        1.3,
        attack_s=0.08,
        bright_decay_s=0.3,
        sustain=1.0,
        release_s=0.15,
        pitch_decay_exponent=0.0,
        attack_noise=0.02,
        attack_noise_decay_s=0.05,
        breath_noise=0.01,
        vibrato_cents=25.0,
    ),
    "brass": Timbre(
        0.8,
        1.6,
        attack_s=0.04,
        bright_decay_s=0.25,
        sustain=1.0,
        release_s=0.08,
        bright_level=0.5,
        pitch_decay_exponent=0.0,
        attack_noise=0.03,
        vibrato_cents=10.0,
    ),
    "square": Timbre(
        1.0,
        1.3,
        attack_s=0.01,
        bright_decay_s=0.5,
        sustain=1.0,
        release_s=0.05,
        even_weight=0.0,
        pitch_decay_exponent=0.0,
        attack_noise=0.0,
        vibrato_cents=10.0,
    ),
    "bass_pluck": Timbre(
        1.0,
        2.5,
        bright_decay_s=0.08,
        mellow_decay_s=1.5,
        release_s=0.06,
        pitch_decay_exponent=0.3,
        attack_noise=0.05,
        attack_noise_decay_s=0.004,
    ),
    "bass_round": Timbre(
        1.5,
        ((1, 1.0), (2, 0.4), (3, 0.15)),
        bright_decay_s=0.06,
        mellow_decay_s=2.0,
        sustain=0.3,
        release_s=0.08,
        bright_level=0.4,
        attack_noise=0.03,
    ),
    "bass_synth": Timbre(
        1.0,
        1.5,
        attack_s=0.005,
        bright_decay_s=0.15,
        mellow_decay_s=0.8,
        sustain=0.7,
        release_s=0.05,
        pitch_decay_exponent=0.0,
        attack_noise=0.0,
    ),
}


def render_pitched(
    rng: np.random.Generator, notes: Sequence[Note], timbre_name: str, num_samples: int, sample_rate: int
) -> np.ndarray:
    """Render ``notes`` with one timbre into ``(2, samples)`` float64 (mono unless the timbre is a pair)."""
    timbre = TIMBRES[timbre_name]
    out = np.zeros((2, num_samples))
    for note in notes:
        start = round(note.start_s * sample_rate)
        if start >= num_samples:
            continue
        hold = note.end_s - note.start_s
        f0 = 440.0 * 2.0 ** ((note.pitch - 69) / 12.0)
        length = min(num_samples - start, round(_audible_s(timbre, hold, f0) * sample_rate))
        times = np.arange(length) / sample_rate
        loudness = note.velocity**VELOCITY_EXPONENT
        envelopes = loudness * _envelopes(timbre, times, hold, f0)
        tables = _tables(
            timbre_name,
            _harmonics(f0, HARMONIC_CEILING_HZ, sample_rate),
            _harmonics(f0, MELLOW_CEILING_HZ, sample_rate),
        )
        detunes = (-PAD_DETUNE_CENTS, PAD_DETUNE_CENTS) if timbre.detuned_pair else (0.0,)
        for channel, cents in enumerate(detunes):
            phase = _phase(rng, timbre, times, f0 * 2.0 ** (cents / 1200.0), sample_rate)
            tone = np.einsum("kt,kt->t", envelopes, read_table(tables, phase))
            tone += _noise(rng, timbre, loudness, envelopes[1], sample_rate)
            if timbre.detuned_pair:
                out[channel, start : start + length] += tone
            else:
                out[:, start : start + length] += tone
    return out


def _audible_s(timbre: Timbre, hold_s: float, f0: float) -> float:
    """How long a note sounds: hold plus release, or less when it has decayed away before that."""
    sounding = hold_s + RELEASE_DEPTH * timbre.release_s
    if timbre.sustain > 0.0:
        return sounding
    scale = (f0 / REFERENCE_HZ) ** -timbre.pitch_decay_exponent
    return min(sounding, RELEASE_DEPTH * max(timbre.bright_decay_s, timbre.mellow_decay_s) * scale)


def _envelopes(timbre: Timbre, times: np.ndarray, hold_s: float, f0: float) -> np.ndarray:
    """Bright and mellow amplitude envelopes ``(2, samples)`` over ``times`` for a note held ``hold_s``."""
    scale = (f0 / REFERENCE_HZ) ** -timbre.pitch_decay_exponent
    attack = np.clip(times / timbre.attack_s, 0.0, 1.0)
    bright = timbre.bright_level * attack * np.exp(-times / (timbre.bright_decay_s * scale))
    decay = np.exp(-times / (timbre.mellow_decay_s * scale))
    mellow = attack * (timbre.sustain + (1.0 - timbre.sustain) * decay)
    after = np.clip(times - hold_s, 0.0, None)
    release = np.exp(-after / timbre.release_s) * np.clip(
        1.0 - after / (RELEASE_DEPTH * timbre.release_s), 0.0, 1.0
    )
    return np.stack([bright * release, mellow * release])


def _phase(
    rng: np.random.Generator, timbre: Timbre, times: np.ndarray, f0: float, sample_rate: int
) -> np.ndarray:
    """Phase in cycles, with delayed vibrato for lead timbres, from a random starting phase."""
    start = rng.random()
    if timbre.vibrato_cents == 0.0:
        return start + f0 * times
    depth = timbre.vibrato_cents * np.clip((times - VIBRATO_DELAY_S) / VIBRATO_DELAY_S, 0.0, 1.0)
    rate = VIBRATO_RATE_HZ * rng.uniform(0.9, 1.1)
    freq = f0 * 2.0 ** (depth * np.sin(2.0 * np.pi * rate * times) / 1200.0)
    return start + np.cumsum(freq) / sample_rate


def _noise(
    rng: np.random.Generator, timbre: Timbre, loudness: float, sustain_env: np.ndarray, sample_rate: int
) -> np.ndarray:
    """Attack noise burst scaled by ``loudness`` plus breath noise that follows the sustain envelope."""
    out = np.zeros_like(sustain_env)
    if timbre.attack_noise:
        length = min(out.size, round(BURST_LENGTH_DECAYS * timbre.attack_noise_decay_s * sample_rate))
        times = np.arange(length) / sample_rate
        noise = signal.sosfilt(
            butter_sos(2, ATTACK_NOISE_HIGHPASS_HZ, "highpass", sample_rate), rng.standard_normal(length)
        )
        out[:length] = loudness * timbre.attack_noise * np.exp(-times / timbre.attack_noise_decay_s) * noise
    if timbre.breath_noise:
        breath = signal.sosfilt(
            butter_sos(2, BREATH_NOISE_HIGHPASS_HZ, "highpass", sample_rate), rng.standard_normal(out.size)
        )
        out += timbre.breath_noise * sustain_env * breath
    return out


def _harmonics(f0: float, ceiling_hz: float, sample_rate: int) -> int:
    """How many partials of ``f0`` stay below ``ceiling_hz`` and Nyquist."""
    return max(1, math.floor(min(ceiling_hz, NYQUIST_GUARD * sample_rate) / f0))


@functools.lru_cache(maxsize=256)
def _tables(timbre_name: str, bright_harmonics: int, mellow_harmonics: int) -> np.ndarray:
    """Bright and mellow wavetables ``(2, TABLE_SIZE + 1)`` of a timbre, each limited to its partial count."""
    timbre = TIMBRES[timbre_name]
    return np.stack(
        [
            _table(timbre.bright, timbre.even_weight, bright_harmonics),
            _table(timbre.mellow, timbre.even_weight, mellow_harmonics),
        ]
    )


def _table(spec: float | Partials, even_weight: float, harmonics: int) -> np.ndarray:
    """One period, unit peak amplitude of the fundamental, plus a guard sample for interpolation."""
    amplitudes = np.zeros(TABLE_SIZE // 2 + 1)
    if isinstance(spec, tuple):
        for k, a in spec:
            if k <= harmonics:
                amplitudes[k] = a
    else:
        k = np.arange(1, harmonics + 1)
        amplitudes[1 : harmonics + 1] = k**-spec * np.where(k % 2 == 0, even_weight, 1.0)
    table = np.fft.irfft(-1j * amplitudes * TABLE_SIZE / 2, TABLE_SIZE)
    return np.append(table, table[0])
