"""Music theory for the song generator: keys, chords, progressions and melodies written over them.

Pitches are MIDI note numbers (60 = middle C), times are seconds. Everything that draws takes a
``numpy.random.Generator`` so a seed reproduces it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
SEMITONES_PER_OCTAVE = 12

MODES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
MODE_WEIGHTS = {"major": 0.45, "minor": 0.35, "dorian": 0.1, "mixolydian": 0.1}

# Progressions as 0-based scale degrees, one chord per chord span.
PROGRESSIONS: dict[str, tuple[tuple[int, ...], ...]] = {
    "major": ((0, 4, 5, 3), (0, 5, 3, 4), (1, 4, 0, 0), (0, 3, 0, 4), (5, 3, 0, 4), (0, 2, 3, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 5, 3, 4), (0, 3, 6, 2)),
    "dorian": ((0, 3, 0, 3), (0, 6, 3, 0), (0, 1, 0, 3)),
    "mixolydian": ((0, 6, 3, 0), (0, 3, 6, 3), (0, 6, 0, 3)),
}
SEVENTH_PROBABILITY = 0.3

QUALITY_NAMES = {(4, 7): "", (3, 7): "m", (3, 6): "dim", (4, 8): "aug"}
SEVENTH_NAMES = {10: "7", 11: "maj7", 9: "6"}

# Melody writing: note lengths in grid steps (half beats) and how strongly pitches are pulled.
MELODY_STEP_WEIGHTS = {1: 0.3, 2: 0.4, 3: 0.1, 4: 0.2}
CHORD_TONE_PULL = 3.0
STEP_MOTION_SCALE = 2.5
REPEAT_PENALTY = 0.4
RANGE_CENTER_PULL_SEMITONES = 6.0
FIRST_PITCH_SPREAD_SEMITONES = 2.0
MELODY_VELOCITY_STRONG = 0.75
MELODY_VELOCITY_WEAK = 0.65
MELODY_VELOCITY_SPREAD = 0.08
MELODY_VELOCITY_LIMITS = (0.3, 1.0)


@dataclass(frozen=True)
class Key:
    """A tonic pitch class (0 = C) and a mode name from ``MODES``."""

    tonic: int
    mode: str

    @property
    def name(self) -> str:
        return PITCH_NAMES[self.tonic]

    def scale_pitches(self, low: int, high: int) -> np.ndarray:
        """All pitches of the scale in ``[low, high]``, ascending."""
        classes = {(self.tonic + step) % SEMITONES_PER_OCTAVE for step in MODES[self.mode]}
        return np.array([p for p in range(low, high + 1) if p % SEMITONES_PER_OCTAVE in classes])


@dataclass(frozen=True)
class Chord:
    """A chord as pitch classes, root first (root, third, fifth[, seventh])."""

    pitch_classes: tuple[int, ...]

    @property
    def root(self) -> int:
        return self.pitch_classes[0]

    @property
    def symbol(self) -> str:
        intervals = [(pc - self.root) % SEMITONES_PER_OCTAVE for pc in self.pitch_classes[1:]]
        name = PITCH_NAMES[self.root] + QUALITY_NAMES.get((intervals[0], intervals[1]), "?")
        if len(intervals) > 2:
            name += SEVENTH_NAMES.get(intervals[2], "add")
        return name

    def pitches(self, low: int, high: int) -> np.ndarray:
        """All pitches in ``[low, high]`` that belong to the chord, ascending."""
        classes = set(self.pitch_classes)
        return np.array([p for p in range(low, high + 1) if p % SEMITONES_PER_OCTAVE in classes])


@dataclass(frozen=True)
class ChordSpan:
    """A chord sounding from ``start_s`` to ``end_s``."""

    start_s: float
    end_s: float
    chord: Chord


@dataclass(frozen=True)
class Note:
    """One note: MIDI ``pitch`` (a GM drum number on drum parts), ``velocity`` in (0, 1]."""

    start_s: float
    end_s: float
    pitch: int
    velocity: float


def draw_key(rng: np.random.Generator) -> Key:
    """A random tonic and a mode drawn with ``MODE_WEIGHTS``."""
    modes = list(MODE_WEIGHTS)
    mode = modes[rng.choice(len(modes), p=list(MODE_WEIGHTS.values()))]
    return Key(tonic=int(rng.integers(SEMITONES_PER_OCTAVE)), mode=mode)


def diatonic_chord(key: Key, degree: int, seventh: bool) -> Chord:
    """The triad (or seventh chord) stacked in thirds on scale ``degree`` of ``key``."""
    steps = MODES[key.mode]
    size = 4 if seventh else 3
    pcs = tuple(
        (key.tonic + steps[(degree + 2 * i) % len(steps)]) % SEMITONES_PER_OCTAVE for i in range(size)
    )
    return Chord(pcs)


def draw_progression(rng: np.random.Generator, key: Key) -> tuple[Chord, ...]:
    """A progression from ``PROGRESSIONS`` for the key's mode, some chords with sevenths."""
    options = PROGRESSIONS[key.mode]
    degrees = options[rng.integers(len(options))]
    return tuple(diatonic_chord(key, d, bool(rng.random() < SEVENTH_PROBABILITY)) for d in degrees)


def chord_at(spans: Sequence[ChordSpan], time_s: float) -> Chord:
    """The chord sounding at ``time_s`` (the last one after the end)."""
    for span in spans:
        if span.start_s <= time_s < span.end_s:
            return span.chord
    return spans[-1].chord


def write_melody(
    rng: np.random.Generator,
    key: Key,
    chords: Sequence[ChordSpan],
    start_s: float,
    end_s: float,
    grid_s: float,
    pitch_range: tuple[int, int],
) -> list[Note]:
    """A melody that fills ``[start_s, end_s)`` with contiguous notes on a grid of ``grid_s``.

    Notes on strong grid positions lean to chord tones, motion is mostly stepwise, the pitch is pulled
    back to the middle of ``pitch_range`` and the last note is a chord tone. Note boundaries fall on
    the grid; the caller shortens notes when it wants gaps between them.
    """
    low, high = pitch_range
    scale = key.scale_pitches(low, high)
    center = 0.5 * (low + high)
    total_steps = max(1, round((end_s - start_s) / grid_s))
    lengths = _rhythm(rng, total_steps)
    notes: list[Note] = []
    first = center + rng.normal(0.0, FIRST_PITCH_SPREAD_SEMITONES)
    previous = int(scale[np.argmin(np.abs(scale - first))])
    position = 0
    for index, length in enumerate(lengths):
        onset = start_s + position * grid_s
        offset = start_s + (position + length) * grid_s if index < len(lengths) - 1 else end_s
        chord = chord_at(chords, onset)
        chord_tones = set(chord.pitch_classes)
        weights = np.exp(-np.abs(scale - previous) / STEP_MOTION_SCALE)
        weights *= np.exp(-(((scale - center) / RANGE_CENTER_PULL_SEMITONES) ** 2) / 2)
        is_strong = position % 2 == 0
        is_last = index == len(lengths) - 1
        if is_strong or is_last:
            is_tone = np.array([p % SEMITONES_PER_OCTAVE in chord_tones for p in scale])
            weights = np.where(is_tone, weights * CHORD_TONE_PULL, weights / CHORD_TONE_PULL)
            if is_last:
                weights = np.where(is_tone, weights, 0.0)
        weights = np.where(scale == previous, weights * REPEAT_PENALTY, weights)
        pitch = int(rng.choice(scale, p=weights / weights.sum()))
        mean = MELODY_VELOCITY_STRONG if is_strong else MELODY_VELOCITY_WEAK
        velocity = float(np.clip(rng.normal(mean, MELODY_VELOCITY_SPREAD), *MELODY_VELOCITY_LIMITS))
        notes.append(Note(onset, offset, pitch, velocity))
        previous = pitch
        position += length
    return notes


def _rhythm(rng: np.random.Generator, total_steps: int) -> list[int]:
    """Note lengths in grid steps that add up to ``total_steps``."""
    steps = np.array(list(MELODY_STEP_WEIGHTS))
    probabilities = np.array(list(MELODY_STEP_WEIGHTS.values()))
    lengths: list[int] = []
    remaining = total_steps
    while remaining > 0:
        length = int(min(rng.choice(steps, p=probabilities), remaining))
        lengths.append(length)
        remaining -= length
    return lengths
