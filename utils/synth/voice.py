"""A source-filter singer: sung phrases from notes and syllables, in numpy/scipy only.

The source is a band-limited glottal pulse (the derivative of a Rosenberg flow pulse) read from a wavetable
at a moving fundamental with portamento, delayed vibrato, jitter, shimmer and slow drift, plus aspiration
noise that pulses with the glottal cycle. The filter is a moving formant envelope (five resonances per vowel
and voice type, interpolated between syllables) applied frame by frame in the short-time Fourier domain.
Consonants are added in the time domain at syllable onsets: plosive closures and bursts, fricatives as
band-passed noise, nasals as a damped murmur, and "h" as extra breath. Breath and fricatives keep energy well
above 5 kHz, as in real vocals.
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

VOWELS = ("a", "e", "i", "o", "u")
VOWEL_CHANGE_PROBABILITY = 0.7
# Singing formants per voice type and vowel: centre frequencies (Hz), levels (dB re F1), bandwidths (Hz),
# after the classic measured tables used for formant synthesis of sung vowels.
FORMANTS: dict[str, dict[str, tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]]] = {
    "bass": {
        "a": ((600, 1040, 2250, 2450, 2750), (0, -7, -9, -9, -20), (60, 70, 110, 120, 130)),
        "e": ((400, 1620, 2400, 2800, 3100), (0, -12, -9, -12, -18), (40, 80, 100, 120, 120)),
        "i": ((250, 1750, 2600, 3050, 3340), (0, -30, -16, -22, -28), (60, 90, 100, 120, 120)),
        "o": ((400, 750, 2400, 2600, 2900), (0, -11, -21, -20, -40), (40, 80, 100, 120, 120)),
        "u": ((350, 600, 2400, 2675, 2950), (0, -20, -32, -28, -36), (40, 80, 100, 120, 120)),
    },
    "tenor": {
        "a": ((650, 1080, 2650, 2900, 3250), (0, -6, -7, -8, -22), (80, 90, 120, 130, 140)),
        "e": ((400, 1700, 2600, 3200, 3580), (0, -14, -12, -14, -20), (70, 80, 100, 120, 120)),
        "i": ((290, 1870, 2800, 3250, 3540), (0, -15, -18, -20, -30), (40, 90, 100, 120, 120)),
        "o": ((400, 800, 2600, 2800, 3000), (0, -10, -12, -12, -26), (40, 80, 100, 120, 120)),
        "u": ((350, 600, 2700, 2900, 3300), (0, -20, -17, -14, -26), (40, 60, 100, 120, 120)),
    },
    "alto": {
        "a": ((800, 1150, 2800, 3500, 4950), (0, -4, -20, -36, -60), (80, 90, 120, 130, 140)),
        "e": ((400, 1600, 2700, 3300, 4950), (0, -24, -30, -35, -60), (60, 80, 120, 150, 200)),
        "i": ((350, 1700, 2700, 3700, 4950), (0, -20, -30, -36, -60), (50, 100, 120, 150, 200)),
        "o": ((450, 800, 2830, 3500, 4950), (0, -9, -16, -28, -55), (70, 80, 100, 130, 135)),
        "u": ((325, 700, 2530, 3500, 4950), (0, -12, -30, -40, -64), (50, 60, 170, 180, 200)),
    },
    "soprano": {
        "a": ((800, 1150, 2900, 3900, 4950), (0, -6, -32, -20, -50), (80, 90, 120, 130, 140)),
        "e": ((350, 2000, 2800, 3600, 4950), (0, -20, -15, -40, -56), (60, 100, 120, 150, 200)),
        "i": ((270, 2140, 2950, 3900, 4950), (0, -12, -26, -26, -44), (60, 90, 100, 120, 120)),
        "o": ((450, 800, 2830, 3800, 4950), (0, -11, -22, -22, -50), (70, 80, 100, 130, 135)),
        "u": ((325, 700, 2700, 3800, 4950), (0, -16, -35, -40, -60), (50, 60, 170, 180, 200)),
    },
}
VOICE_RANGES = {"bass": (41, 62), "tenor": (48, 69), "alto": (55, 74), "soprano": (60, 81)}
NASAL_VOWEL = "u"  # the murmur of m/n borrows the closed back vowel's formants

# Consonants: kind, duration (s), noise band (Hz), noise level (dB re the phrase's voiced RMS).
CONSONANTS: dict[str, tuple[str, float, tuple[float, float], float]] = {
    "": ("none", 0.0, (0.0, 0.0), 0.0),
    "t": ("plosive", 0.06, (3000.0, 9500.0), -6.0),
    "k": ("plosive", 0.07, (1500.0, 5000.0), -6.0),
    "p": ("plosive", 0.06, (400.0, 2500.0), -8.0),
    "s": ("fricative", 0.11, (4500.0, 13000.0), -7.0),
    "sh": ("fricative", 0.11, (1800.0, 7500.0), -8.0),
    "f": ("fricative", 0.09, (1200.0, 15000.0), -16.0),
    "h": ("aspirate", 0.08, (0.0, 0.0), 0.0),
    "m": ("nasal", 0.07, (0.0, 0.0), 0.0),
    "n": ("nasal", 0.06, (0.0, 0.0), 0.0),
}
CONSONANT_WEIGHTS = {
    "": 0.3,
    "t": 0.09,
    "k": 0.07,
    "p": 0.05,
    "s": 0.1,
    "sh": 0.05,
    "f": 0.05,
    "h": 0.06,
    "m": 0.12,
    "n": 0.11,
}
MAX_CONSONANT_SHARE = 0.4  # a consonant takes at most this share of its note
PLOSIVE_CLOSURE_SHARE = 0.5  # silence before the burst, as a share of the plosive
BURST_DECAY_S = 0.006
ASPIRATE_LEVEL = 0.6  # breath amplitude of "h" relative to full voicing
PLOSIVE_ASPIRATION_LEVEL = 0.3
NASAL_LEVEL = 0.45
CONSONANT_RAMP_S = 0.015

CONTROL_RATE_HZ = 1000.0
GLOTTAL_TABLE_SIZE = 4096
HARMONIC_CEILING_HZ = 18000.0  # source harmonics stop below this at the phrase's highest pitch
STFT_SIZE = 1024
STFT_HOP = 256
ENVELOPE_FLOOR_DB = -26.0  # spectral envelope between and above formants, re the F1 peak
AIR_ROLLOFF_HZ = 6000.0  # above this the envelope falls 6 dB per octave
FORMANT_TUNING_RATIO = 1.1  # F1 rises to stay above the fundamental on high notes
VOWEL_TRANSITION_S = 0.06
ATTACK_S = 0.05
RELEASE_S = 0.15
LEGATO_DIP_DEPTH = 0.25
LEGATO_DIP_S = 0.05
PHRASE_ARCH_DEPTH = 0.15
VELOCITY_DYNAMIC_RANGE_DB = 8.0
ASPIRATION_GAIN = 3.0  # noise amplitude per unit breathiness, before the formant envelope
ASPIRATION_PULSE_FLOOR = 0.4  # aspiration never drops below this share within a glottal cycle
RELEASE_BREATH_BOOST = 1.5
VIBRATO_RAMP_S = 0.25
VIBRATO_RATE_WANDER = 0.05
VIBRATO_WANDER_BANDWIDTH_HZ = 1.0
JITTER_BANDWIDTH_HZ = 30.0
DRIFT_BANDWIDTH_HZ = 1.5
DRIFT_CENTS = 8.0
SHIMMER_BANDWIDTH_HZ = 20.0
SCOOP_PROBABILITY = 0.35
SCOOP_CENTS = (20.0, 80.0)
SCOOP_DECAY_S = 0.05


# A singer's traits, each drawn uniformly in its range (see ``Voice``).
VOICE_TRAIT_RANGES: dict[str, tuple[float, float]] = {
    "vibrato_rate_hz": (4.5, 6.5),
    "vibrato_depth_cents": (15.0, 70.0),
    "vibrato_delay_s": (0.12, 0.4),
    "portamento_s": (0.04, 0.12),
    "jitter_cents": (3.0, 10.0),
    "shimmer_db": (0.3, 1.0),
    "breathiness": (0.03, 0.15),
    "open_quotient": (0.5, 0.8),
    "speed_quotient": (1.5, 3.5),
    "extra_tilt": (0.0, 0.6),
}


@dataclass(frozen=True)
class Voice:
    """A singer: voice type and the ranges of everything that makes the voice move."""

    voice_type: str
    vibrato_rate_hz: float
    vibrato_depth_cents: float
    vibrato_delay_s: float
    portamento_s: float
    jitter_cents: float
    shimmer_db: float
    breathiness: float
    open_quotient: float
    speed_quotient: float
    extra_tilt: float  # source roll-off beyond the glottal pulse's own, as a power of the harmonic number


@dataclass(frozen=True)
class SungNote:
    """A melody note with the syllable sung on it (consonant onset, possibly empty, and vowel)."""

    note: Note
    consonant: str
    vowel: str

    @property
    def syllable(self) -> str:
        return self.consonant + self.vowel


def draw_voice(rng: np.random.Generator) -> Voice:
    """A random singer: a voice type of ``FORMANTS``, every other trait uniform in ``VOICE_TRAIT_RANGES``."""
    types = list(FORMANTS)
    voice_type = types[rng.integers(len(types))]
    traits = {name: float(rng.uniform(low, high)) for name, (low, high) in VOICE_TRAIT_RANGES.items()}
    return Voice(voice_type=voice_type, **traits)


def draw_lyrics(rng: np.random.Generator, notes: Sequence[Note]) -> list[SungNote]:
    """One random syllable per note; the vowel changes from note to note more often than not."""
    consonants = list(CONSONANT_WEIGHTS)
    weights = np.array(list(CONSONANT_WEIGHTS.values()))
    sung: list[SungNote] = []
    vowel = VOWELS[rng.integers(len(VOWELS))]
    for note in notes:
        if rng.random() < VOWEL_CHANGE_PROBABILITY:
            vowel = VOWELS[rng.integers(len(VOWELS))]
        consonant = consonants[rng.choice(len(consonants), p=weights / weights.sum())]
        sung.append(SungNote(note, consonant, vowel))
    return sung


def sing(
    rng: np.random.Generator,
    lines: Sequence[Sequence[SungNote]],
    voice: Voice,
    num_samples: int,
    sample_rate: int,
) -> np.ndarray:
    """A dry mono vocal track ``(samples,)``: every line sung in place, exact zeros elsewhere."""
    track = np.zeros(num_samples)
    for line in lines:
        start = round(line[0].note.start_s * sample_rate)
        phrase = sing_phrase(rng, line, voice, sample_rate)[: num_samples - start]
        track[start : start + phrase.size] += phrase
    return track


def sing_phrase(
    rng: np.random.Generator, notes: Sequence[SungNote], voice: Voice, sample_rate: int
) -> np.ndarray:
    """Mono phrase ``(samples,)``: sample 0 is the first note's onset, the end covers ``RELEASE_S``.

    Notes must be contiguous (legato); the result is silent nowhere inside the phrase except in plosive
    closures, and fades out over ``RELEASE_S`` after the last note.
    """
    start_s = notes[0].note.start_s
    length_s = notes[-1].note.end_s - start_s + RELEASE_S
    num_samples = round(length_s * sample_rate)
    times = np.arange(num_samples) / sample_rate
    control_times = np.arange(math.ceil(length_s * CONTROL_RATE_HZ) + 1) / CONTROL_RATE_HZ
    spans = [(n.note.start_s - start_s, n.note.end_s - start_s) for n in notes]
    consonant_s = [
        min(CONSONANTS[n.consonant][1], MAX_CONSONANT_SHARE * (end - onset))
        for n, (onset, end) in zip(notes, spans, strict=True)
    ]

    pitch = _pitch_curve(rng, notes, spans, voice, control_times)
    voicing, breath = _amplitude_curves(rng, notes, spans, consonant_s, voice, control_times)
    f0 = 440.0 * 2.0 ** ((np.interp(times, control_times, pitch) - 69.0) / 12.0)
    phase = np.cumsum(f0) / sample_rate
    harmonics = max(1, int(min(HARMONIC_CEILING_HZ, NYQUIST_GUARD * sample_rate) / f0.max()))
    table = _glottal_table(voice.open_quotient, voice.speed_quotient, voice.extra_tilt, harmonics)
    voiced = read_table(table, phase) * np.interp(times, control_times, voicing)
    pulse = 0.5 * (1.0 - np.cos(2.0 * np.pi * phase))
    aspiration = (
        rng.standard_normal(num_samples)
        * (ASPIRATION_PULSE_FLOOR + (1.0 - ASPIRATION_PULSE_FLOOR) * pulse)
        * np.interp(times, control_times, breath)
        * ASPIRATION_GAIN
    )
    sung = _formant_filter(
        voiced, aspiration, notes, spans, consonant_s, voice, pitch, control_times, sample_rate
    )
    level = float(np.sqrt(np.mean(sung**2))) + 1e-12
    for sung_note, (onset, _), duration in zip(notes, spans, consonant_s, strict=True):
        _add_consonant(rng, sung, sung_note, onset, duration, level, sample_rate)
    return sung


def _pitch_curve(
    rng: np.random.Generator,
    notes: Sequence[SungNote],
    spans: Sequence[tuple[float, float]],
    voice: Voice,
    times: np.ndarray,
) -> np.ndarray:
    """MIDI pitch per control sample: glides between notes, scoops, delayed vibrato, jitter and drift."""
    index = np.clip(np.searchsorted([a for a, _ in spans], times, side="right") - 1, 0, len(spans) - 1)
    steps = np.array([n.note.pitch for n in notes], dtype=float)[index]
    glide = max(3, round(voice.portamento_s * CONTROL_RATE_HZ))
    kernel = np.hanning(glide + 2)[1:-1]
    padded = np.pad(steps, glide, mode="edge")
    pitch = np.convolve(padded, kernel / kernel.sum(), mode="same")[glide:-glide]

    cents = np.zeros_like(times)
    depth = np.zeros_like(times)
    for onset, offset in spans:
        inside = (times >= onset) & (times < offset)
        since = times[inside] - onset
        if rng.random() < SCOOP_PROBABILITY:
            cents[inside] -= rng.uniform(*SCOOP_CENTS) * np.exp(-since / SCOOP_DECAY_S)
        ramp = np.clip((since - voice.vibrato_delay_s) / VIBRATO_RAMP_S, 0.0, 1.0)
        fade = np.clip((offset - times[inside]) / VIBRATO_RAMP_S, 0.0, 1.0)
        depth[inside] = voice.vibrato_depth_cents * rng.uniform(0.7, 1.3) * ramp * fade
    wander = _smooth_noise(rng, times.size, VIBRATO_WANDER_BANDWIDTH_HZ)
    rate = voice.vibrato_rate_hz * (1.0 + VIBRATO_RATE_WANDER * wander)
    vibrato = depth * np.sin(2.0 * np.pi * np.cumsum(rate) / CONTROL_RATE_HZ)
    jitter = voice.jitter_cents * _smooth_noise(rng, times.size, JITTER_BANDWIDTH_HZ)
    drift = DRIFT_CENTS * _smooth_noise(rng, times.size, DRIFT_BANDWIDTH_HZ)
    return pitch + (cents + vibrato + jitter + drift) / 100.0


def _amplitude_curves(
    rng: np.random.Generator,
    notes: Sequence[SungNote],
    spans: Sequence[tuple[float, float]],
    consonant_s: Sequence[float],
    voice: Voice,
    times: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Voicing and breath amplitudes per control sample (linear, voicing peaks near 1)."""
    end = spans[-1][1]
    position = np.clip(times / end, 0.0, 1.0)
    voicing = 1.0 + PHRASE_ARCH_DEPTH * (np.sin(np.pi * position) - 0.5)
    breath = np.zeros_like(times)
    for sung_note, (onset, offset), duration in zip(notes, spans, consonant_s, strict=True):
        inside = (times >= onset) & (times < offset)
        gain_db = VELOCITY_DYNAMIC_RANGE_DB * (sung_note.note.velocity - 1.0)
        voicing[inside] *= 10.0 ** (gain_db / 20.0)
        kind = CONSONANTS[sung_note.consonant][0]
        since = times - onset
        in_consonant = inside & (since < duration)
        if kind == "none" and onset > 0:
            voicing *= 1.0 - LEGATO_DIP_DEPTH * np.exp(-0.5 * (since / (0.5 * LEGATO_DIP_S)) ** 2)
        elif kind in ("plosive", "fricative", "aspirate"):
            gate = np.clip((since - duration) / CONSONANT_RAMP_S, 0.0, 1.0)
            closing = np.clip(-since / CONSONANT_RAMP_S, 0.0, 1.0)
            voicing *= np.where(
                (since > -CONSONANT_RAMP_S) & (since < duration + CONSONANT_RAMP_S),
                np.maximum(gate, closing),
                1.0,
            )
            if kind == "aspirate":
                breath[in_consonant] += ASPIRATE_LEVEL
            elif kind == "plosive":
                after_burst = in_consonant & (since >= PLOSIVE_CLOSURE_SHARE * duration)
                breath[after_burst] += PLOSIVE_ASPIRATION_LEVEL
        elif kind == "nasal":
            voicing[in_consonant] *= NASAL_LEVEL
    voicing *= np.clip(times / ATTACK_S, 0.0, 1.0)
    release = np.clip((times - end) / RELEASE_S, 0.0, 1.0)
    voicing *= 0.5 * (1.0 + np.cos(np.pi * release))
    voicing *= 10.0 ** (voice.shimmer_db * _smooth_noise(rng, times.size, SHIMMER_BANDWIDTH_HZ) / 20.0)
    breath += voice.breathiness * voicing * (1.0 + RELEASE_BREATH_BOOST * release * (release < 1.0))
    return voicing, breath


def _formant_filter(
    voiced: np.ndarray,
    aspiration: np.ndarray,
    notes: Sequence[SungNote],
    spans: Sequence[tuple[float, float]],
    consonant_s: Sequence[float],
    voice: Voice,
    pitch: np.ndarray,
    control_times: np.ndarray,
    sample_rate: int,
) -> np.ndarray:
    """Voiced source and aspiration ``(samples,)`` through the moving vowel envelopes, summed."""
    stft = _stft(sample_rate)
    frame_times = stft.t(voiced.size)
    index = np.clip(np.searchsorted([a for a, _ in spans], frame_times, side="right") - 1, 0, len(spans) - 1)
    vowels = [n.vowel for n in notes]
    table = FORMANTS[voice.voice_type]
    centres = np.array([table[vowels[i]][0] for i in index], dtype=float)
    levels = np.array([table[vowels[i]][1] for i in index], dtype=float)
    widths = np.array([table[vowels[i]][2] for i in index], dtype=float)
    for i, ((onset, _), duration) in enumerate(zip(spans, consonant_s, strict=True)):
        if CONSONANTS[notes[i].consonant][0] == "nasal":
            murmur = (frame_times >= onset) & (frame_times < onset + duration)
            centres[murmur], levels[murmur], widths[murmur] = table[NASAL_VOWEL]
    smooth = max(1, round(VOWEL_TRANSITION_S * sample_rate / STFT_HOP))
    centres = np.exp(_smooth_frames(np.log(centres), smooth))
    levels = _smooth_frames(levels, smooth)
    widths = _smooth_frames(widths, smooth)
    f0 = 440.0 * 2.0 ** ((np.interp(frame_times, control_times, pitch) - 69.0) / 12.0)
    centres[:, 0] = np.maximum(centres[:, 0], FORMANT_TUNING_RATIO * f0)
    envelope = _envelope(stft.f, centres, levels, widths)
    spectrum = (stft.stft(voiced) + stft.stft(aspiration)) * envelope.T
    return stft.istft(spectrum, k1=voiced.size)


def _envelope(
    freqs: np.ndarray, centres: np.ndarray, levels_db: np.ndarray, widths: np.ndarray
) -> np.ndarray:
    """Spectral envelope ``(frames, freqs)``: resonances (peak = level) over a floor, air band rolled off.

    Each resonance is a two-pole low-pass normalised to its peak; levels are raised by the ratio of the
    centre to F1 so that, on a source falling 6 dB per octave, the peaks land at the tabulated levels.
    """
    ratio = freqs[None, None, :] / centres[:, :, None]
    q = (centres / widths)[:, :, None]
    shape = 1.0 / (q * np.sqrt((1.0 - ratio**2) ** 2 + (ratio / q) ** 2))
    gains = 10.0 ** (levels_db / 20.0) * centres / centres[:, :1]
    air = 1.0 / np.sqrt(1.0 + (freqs / AIR_ROLLOFF_HZ) ** 2)
    return ((gains[:, :, None] * shape).sum(axis=1) + 10.0 ** (ENVELOPE_FLOOR_DB / 20.0)) * air


def _add_consonant(
    rng: np.random.Generator,
    out: np.ndarray,
    sung_note: SungNote,
    onset_s: float,
    duration_s: float,
    level: float,
    sample_rate: int,
) -> None:
    """Add the note's plosive burst or fricative noise to ``out`` in place."""
    kind, _, band, level_db = CONSONANTS[sung_note.consonant]
    if kind not in ("plosive", "fricative") or duration_s <= 0:
        return
    start = round(onset_s * sample_rate)
    if kind == "plosive":
        start += round(PLOSIVE_CLOSURE_SHARE * duration_s * sample_rate)
        length = round((1.0 - PLOSIVE_CLOSURE_SHARE) * duration_s * sample_rate)
        shape = np.exp(-np.arange(length) / (BURST_DECAY_S * sample_rate))
    else:
        length = round(duration_s * sample_rate)
        ramp = min(length // 2, round(CONSONANT_RAMP_S * sample_rate))
        shape = np.ones(length)
        shape[:ramp] = np.linspace(0.0, 1.0, ramp)
        shape[length - ramp :] = np.linspace(1.0, 0.0, ramp)
    length = min(length, out.size - start)
    if length <= 0:
        return
    noise = signal.sosfilt(butter_sos(2, band, "bandpass", sample_rate), rng.standard_normal(length))
    noise /= np.sqrt(np.mean(noise**2)) + 1e-12
    gain = level * 10.0 ** (level_db / 20.0) * sung_note.note.velocity
    out[start : start + length] += gain * noise * shape[:length]


@functools.lru_cache(maxsize=8)
def _stft(sample_rate: int) -> signal.ShortTimeFFT:
    """The short-time Fourier transform used for the vowel envelopes."""
    return signal.ShortTimeFFT(signal.windows.hann(STFT_SIZE, sym=False), STFT_HOP, sample_rate)


@functools.lru_cache(maxsize=64)
def _glottal_table(open_quotient: float, speed_quotient: float, tilt: float, harmonics: int) -> np.ndarray:
    """One period of the glottal flow derivative, ``harmonics`` partials, unit RMS, one guard sample."""
    phase = np.arange(GLOTTAL_TABLE_SIZE) / GLOTTAL_TABLE_SIZE
    rise = open_quotient * speed_quotient / (1.0 + speed_quotient)
    fall = open_quotient / (1.0 + speed_quotient)
    flow = np.where(
        phase < rise,
        0.5 * (1.0 - np.cos(np.pi * phase / rise)),
        np.where(phase < rise + fall, np.cos(0.5 * np.pi * (phase - rise) / fall), 0.0),
    )
    spectrum = np.fft.rfft(flow)
    k = np.arange(spectrum.size)
    spectrum = spectrum * 1j * k * np.where(k > 0, k, 1.0) ** -tilt
    spectrum[0] = 0.0
    spectrum[harmonics + 1 :] = 0.0
    table = np.fft.irfft(spectrum, GLOTTAL_TABLE_SIZE)
    table /= np.sqrt(np.mean(table**2))
    return np.append(table, table[0])


def _smooth_noise(rng: np.random.Generator, size: int, bandwidth_hz: float) -> np.ndarray:
    """Unit-variance low-pass noise at the control rate."""
    b, a = signal.butter(1, bandwidth_hz, fs=CONTROL_RATE_HZ)
    noise = signal.lfilter(b, a, rng.standard_normal(size))
    return noise / (np.std(noise) + 1e-12)


def _smooth_frames(values: np.ndarray, width: int) -> np.ndarray:
    """Moving Hann average of ``(frames, k)`` values along frames, edges held."""
    if width < 2:
        return values
    kernel = np.hanning(width + 2)[1:-1]
    kernel /= kernel.sum()
    padded = np.pad(values, ((width, width), (0, 0)), mode="edge")
    smoothed = np.stack([np.convolve(padded[:, j], kernel, mode="same") for j in range(values.shape[1])], 1)
    return smoothed[width:-width]
