"""Arrangements: tempo, key, sections, chords, instruments, and the notes every part plays.

A song is a sequence of sections (intro, verse, chorus, bridge, breakdown, outro) of whole 4/4 bars. Each
section switches parts on and off, so instruments drop in and out; every section keeps at least one
harmonic part (comping or pad) so the voice is never left alone. The lead instrument is the generator's hard
negative: a melodic, often vibrato-laden instrument that plays mostly in the gaps between vocal phrases.
General MIDI programs that are voices (choir, voice oohs, synth voice, voice lead, choir pad) are never used:
in MUSDB terms they would belong to the vocals stem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from utils.synth.grooves import GROOVES, HAT_CLOSED, HAT_OPEN, RIDE, drum_bar
from utils.synth.plan import Phrase
from utils.synth.theory import (
    SEMITONES_PER_OCTAVE,
    Chord,
    ChordSpan,
    Key,
    Note,
    chord_at,
    draw_key,
    draw_progression,
    write_melody,
)

TEMPO_RANGE_BPM = (70.0, 150.0)
BEATS_PER_BAR = 4
PARTS = ("drums", "bass", "comp", "pad", "arp", "lead")
PART_STEMS = {
    "drums": "drums",
    "bass": "bass",
    "comp": "other",
    "pad": "other",
    "arp": "other",
    "lead": "other",
}
HARMONIC_PARTS = ("comp", "pad")


@dataclass(frozen=True)
class Instrument:
    """An instrument: GM ``program`` for FluidSynth (bank 128 kits for drums) and the numpy timbre or kit."""

    name: str
    gm_program: int
    numpy_timbre: str


INSTRUMENTS: dict[str, tuple[Instrument, ...]] = {
    "drums": (
        Instrument("standard kit", 0, "acoustic"),
        Instrument("room kit", 8, "acoustic"),
        Instrument("power kit", 16, "acoustic"),
        Instrument("electronic kit", 24, "electronic"),
        Instrument("TR-808 kit", 25, "electronic"),
        Instrument("jazz kit", 32, "acoustic"),
        Instrument("brush kit", 40, "acoustic"),
    ),
    "bass": (
        Instrument("acoustic bass", 32, "bass_round"),
        Instrument("fingered bass", 33, "bass_pluck"),
        Instrument("picked bass", 34, "bass_pluck"),
        Instrument("fretless bass", 35, "bass_round"),
        Instrument("synth bass 1", 38, "bass_synth"),
        Instrument("synth bass 2", 39, "bass_synth"),
    ),
    "comp": (
        Instrument("grand piano", 0, "piano"),
        Instrument("bright piano", 1, "piano"),
        Instrument("electric piano", 4, "epiano"),
        Instrument("electric piano 2", 5, "epiano"),
        Instrument("nylon guitar", 24, "pluck"),
        Instrument("steel guitar", 25, "pluck"),
        Instrument("clean electric guitar", 27, "pluck"),
        Instrument("drawbar organ", 16, "organ"),
        Instrument("harpsichord", 6, "harpsichord"),
    ),
    "pad": (
        Instrument("strings", 48, "pad"),
        Instrument("slow strings", 49, "pad"),
        Instrument("synth strings", 50, "pad"),
        Instrument("warm pad", 89, "pad"),
        Instrument("polysynth", 90, "pad"),
    ),
    "arp": (
        Instrument("harp", 46, "pluck"),
        Instrument("vibraphone", 11, "bell"),
        Instrument("marimba", 12, "mallet"),
        Instrument("celesta", 8, "bell"),
        Instrument("nylon guitar", 24, "pluck"),
        Instrument("harpsichord", 6, "harpsichord"),
    ),
    "lead": (
        Instrument("flute", 73, "flute"),
        Instrument("violin", 40, "bowed"),
        Instrument("alto sax", 65, "reed"),
        Instrument("tenor sax", 66, "reed"),
        Instrument("trumpet", 56, "brass"),
        Instrument("clarinet", 71, "reed"),
        Instrument("oboe", 68, "reed"),
        Instrument("harmonica", 22, "reed"),
        Instrument("square lead", 80, "square"),
        Instrument("saw lead", 81, "brass"),
        Instrument("jazz guitar", 26, "pluck"),
    ),
}
GUITAR_PROGRAMS = frozenset({24, 25, 26, 27})

SECTION_BARS = {
    "intro": (2, 4),
    "verse": (4, 8),
    "chorus": (4, 8),
    "bridge": (4,),
    "breakdown": (2, 4),
    "outro": (2, 4),
}
SECTION_PART_PROBABILITIES = {
    "intro": {"drums": 0.5, "bass": 0.5, "comp": 0.8, "pad": 0.5, "arp": 0.5},
    "verse": {"drums": 0.9, "bass": 0.95, "comp": 0.9, "pad": 0.35, "arp": 0.35},
    "chorus": {"drums": 1.0, "bass": 1.0, "comp": 0.95, "pad": 0.7, "arp": 0.6},
    "bridge": {"drums": 0.6, "bass": 0.8, "comp": 0.7, "pad": 0.8, "arp": 0.5},
    "breakdown": {"drums": 0.25, "bass": 0.4, "comp": 0.6, "pad": 0.8, "arp": 0.7},
    "outro": {"drums": 0.6, "bass": 0.7, "comp": 0.8, "pad": 0.6, "arp": 0.4},
}
INTERLUDE_PROBABILITY = 0.3  # a bridge or breakdown after a chorus
PART_PROBABILITY = {"drums": 0.9, "bass": 0.95, "comp": 1.0, "pad": 0.7, "arp": 0.6, "lead": 0.6}
TWO_BAR_CHORDS_MIN_BPM = 100.0
TWO_BAR_CHORDS_PROBABILITY = 0.4
CYMBALS = {"verse": HAT_CLOSED, "chorus": RIDE, "bridge": HAT_OPEN}
FILL_PROBABILITY = 0.7

# Bass patterns per bar: (onset in beats, length in beats, velocity, tone), tone one of "root", "fifth",
# "chord" (a random chord tone) or "approach" (a semitone next to the next bar's root).
BASS_PATTERNS: dict[str, tuple[tuple[float, float, float, str], ...]] = {
    "whole": ((0.0, 3.9, 0.8, "root"),),
    "quarters": tuple((float(b), 0.85, 0.8 - 0.1 * (b % 2), "root") for b in range(4)),
    "root_fifth": tuple((float(b), 0.85, 0.8 - 0.1 * (b % 2), ("root", "fifth")[b % 2]) for b in range(4)),
    "eighths": tuple((e / 2, 0.45, 0.8 - 0.2 * (e % 2), "root") for e in range(8)),
    "syncopated": (
        (0.0, 0.7, 0.8, "root"),
        (0.75, 0.7, 0.7, "root"),
        (1.5, 0.7, 0.8, "fifth"),
        (2.5, 0.7, 0.7, "root"),
        (3.0, 0.7, 0.8, "fifth"),
    ),
    "walking": (
        (0.0, 0.85, 0.8, "root"),
        (1.0, 0.85, 0.7, "chord"),
        (2.0, 0.85, 0.8, "chord"),
        (3.0, 0.85, 0.7, "approach"),
    ),
}
BASS_RANGE = (28, 50)
FIFTH = 7
# Comping patterns per bar: (onset in beats, length in beats, velocity).
COMP_PATTERNS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "whole": ((0.0, 3.9, 0.65),),
    "halves": ((0.0, 1.9, 0.65), (2.0, 1.9, 0.65)),
    "quarters": tuple((float(b), 0.8, 0.7 - 0.1 * (b % 2)) for b in range(4)),
    "offbeat": tuple((b + 0.5, 0.35, 0.6) for b in range(4)),
    "syncopated": ((0.0, 0.9, 0.65), (1.5, 0.9, 0.65), (3.0, 0.9, 0.65)),  # 3 + 3 + 2 eighths
}
COMP_RANGE = (52, 76)
STRUM_S = 0.012
PAD_RANGE = (48, 72)
PAD_VOICES = 3
PAD_VELOCITY = 0.55
ARP_STYLES = ("up", "down", "updown", "random")
ARP_RANGE = (60, 86)
ARP_SIXTEENTHS_MAX_BPM = 110.0
ARP_MAX_TONES = 7
ARP_VELOCITY = 0.55
ARP_ACCENT = 0.15
LEAD_RANGE = (55, 84)
LEAD_MIN_GAP_S = 2.0
LEAD_GAP_PROBABILITY = 0.7
LEAD_COUNTERLINE_PROBABILITY = 0.15
LEAD_MARGIN_S = 0.25  # the lead leaves this much room next to vocal phrases it answers
LEGATO = 0.92  # held share of a note's slot for non-vocal melodic parts
HUMANIZE_S = 0.006
VELOCITY_JITTER = 0.07
VELOCITY_LIMITS = (0.1, 1.0)


@dataclass(frozen=True)
class Section:
    """A section of the song and the parts that play in it."""

    name: str
    start_s: float
    end_s: float
    parts: frozenset[str]


@dataclass(frozen=True)
class Arrangement:
    """Everything about a song except its notes: key, tempo, form, harmony and orchestration."""

    key: Key
    tempo_bpm: float
    sections: tuple[Section, ...]
    chords: tuple[ChordSpan, ...]
    instruments: dict[str, Instrument]
    styles: dict[str, str]

    @property
    def beat_s(self) -> float:
        return 60.0 / self.tempo_bpm

    @property
    def bar_s(self) -> float:
        return BEATS_PER_BAR * self.beat_s


def compose(rng: np.random.Generator, duration_s: float) -> Arrangement:
    """Draw tempo, key, form, chords, instruments and playing styles for a song of ``duration_s``."""
    tempo = float(round(rng.uniform(*TEMPO_RANGE_BPM)))
    key = draw_key(rng)
    bar_s = BEATS_PER_BAR * 60.0 / tempo
    form = _form(rng, int(np.ceil(duration_s / bar_s)))
    used = [p for p in PARTS if rng.random() < PART_PROBABILITY[p]]
    instruments = {p: INSTRUMENTS[p][rng.integers(len(INSTRUMENTS[p]))] for p in used}
    progressions = {name: draw_progression(rng, key) for name in ("verse", "chorus", "bridge")}
    bars_per_chord = 2 if tempo >= TWO_BAR_CHORDS_MIN_BPM and rng.random() < TWO_BAR_CHORDS_PROBABILITY else 1
    sections: list[Section] = []
    chords: list[ChordSpan] = []
    bar = 0
    for name, bars in form:
        start_s, end_s = bar * bar_s, min((bar + bars) * bar_s, duration_s)
        sections.append(Section(name, start_s, end_s, _section_parts(rng, name, used)))
        progression = progressions.get(name) or progressions["verse" if rng.random() < 0.5 else "chorus"]
        for i in range(0, bars, bars_per_chord):
            chord_start = (bar + i) * bar_s
            if chord_start < duration_s:
                chord_end = min((bar + min(i + bars_per_chord, bars)) * bar_s, duration_s)
                chords.append(
                    ChordSpan(chord_start, chord_end, progression[(i // bars_per_chord) % len(progression)])
                )
        bar += bars
    styles = {
        "drums": list(GROOVES)[rng.integers(len(GROOVES))],
        "bass": list(BASS_PATTERNS)[rng.integers(len(BASS_PATTERNS))],
        "comp": list(COMP_PATTERNS)[rng.integers(len(COMP_PATTERNS))],
        "arp": ARP_STYLES[rng.integers(len(ARP_STYLES))],
    }
    return Arrangement(key, tempo, tuple(sections), tuple(chords), instruments, styles)


def write_parts(
    rng: np.random.Generator, arrangement: Arrangement, phrases: Sequence[Phrase], duration_s: float
) -> dict[str, list[Note]]:
    """Notes of every part the arrangement uses; the lead answers the vocal ``phrases``."""
    writers = {"drums": _drums, "bass": _bass, "comp": _comp, "pad": _pad, "arp": _arp}
    notes: dict[str, list[Note]] = {}
    for part in arrangement.instruments:
        if part == "lead":
            notes[part] = _lead(rng, arrangement, phrases, duration_s)
        else:
            notes[part] = [
                n for s in arrangement.sections if part in s.parts for n in writers[part](rng, arrangement, s)
            ]
    return notes


def write_vocal_line(
    rng: np.random.Generator,
    arrangement: Arrangement,
    phrases: Sequence[Phrase],
    pitch_range: tuple[int, int],
) -> list[list[Note]]:
    """A legato melody per phrase that fills it exactly, on the half-beat grid, over the chords."""
    return [
        write_melody(
            rng, arrangement.key, arrangement.chords, p.start_s, p.end_s, arrangement.beat_s / 2, pitch_range
        )
        for p in phrases
    ]


def _form(rng: np.random.Generator, total_bars: int) -> list[tuple[str, int]]:
    """Section names and lengths in bars covering at least ``total_bars``."""
    form = [("intro", int(rng.choice(SECTION_BARS["intro"])))]
    bars = form[0][1]
    cycle = ("verse", "chorus")
    index = 0
    while bars < total_bars:
        remaining = total_bars - bars
        if remaining <= max(SECTION_BARS["outro"]) and len(form) > 2:
            name = "outro"
        elif form[-1][0] == "chorus" and rng.random() < INTERLUDE_PROBABILITY:
            name = "bridge" if rng.random() < 0.5 else "breakdown"
        else:
            name = cycle[index % 2]
            index += 1
        length = int(rng.choice(SECTION_BARS[name]))
        form.append((name, length))
        bars += length
    return form


def _section_parts(rng: np.random.Generator, name: str, used: Sequence[str]) -> frozenset[str]:
    """Parts playing in a section; at least one harmonic part whenever the song has one."""
    probabilities = SECTION_PART_PROBABILITIES[name]
    parts = {p for p in used if p in probabilities and rng.random() < probabilities[p]}
    harmonic = [p for p in HARMONIC_PARTS if p in used]
    if harmonic and not parts & set(harmonic):
        parts.add(harmonic[rng.integers(len(harmonic))])
    return frozenset(parts)


def _spans_in(arrangement: Arrangement, section: Section) -> list[ChordSpan]:
    """Chord spans that start within the section."""
    return [c for c in arrangement.chords if section.start_s <= c.start_s < section.end_s]


def _note(rng: np.random.Generator, onset: float, length: float, pitch: int, velocity: float) -> Note:
    """A humanised note: onset jitter and velocity jitter."""
    onset = max(0.0, onset + rng.normal(0.0, HUMANIZE_S))
    return Note(
        onset,
        onset + length,
        int(pitch),
        float(np.clip(velocity + rng.normal(0.0, VELOCITY_JITTER), *VELOCITY_LIMITS)),
    )


def _drums(rng: np.random.Generator, arrangement: Arrangement, section: Section) -> list[Note]:
    """The song's groove bar by bar, cymbal by section, crash on arrival, fill before the next section."""
    bars = round((section.end_s - section.start_s) / arrangement.bar_s)
    cymbal = CYMBALS.get(section.name, HAT_CLOSED)
    is_last = section is arrangement.sections[-1]
    notes = []
    for bar in range(max(1, bars)):
        crash = bar == 0 and section.name in ("chorus", "bridge", "outro")
        fill = bar == bars - 1 and not is_last and rng.random() < FILL_PROBABILITY
        notes += drum_bar(
            rng,
            arrangement.styles["drums"],
            section.start_s + bar * arrangement.bar_s,
            arrangement.beat_s,
            cymbal,
            crash,
            fill,
        )
    return [n for n in notes if n.start_s < section.end_s]


def _bass_root(chord: Chord) -> int:
    """The chord's root in the bass register's lower octave."""
    low = BASS_RANGE[0]
    return low + (chord.root - low) % SEMITONES_PER_OCTAVE


def _bar_starts(arrangement: Arrangement, section: Section) -> np.ndarray:
    """Start times of the section's bars (the last may be cut short by the song's end)."""
    return np.arange(section.start_s, section.end_s - 1e-6, arrangement.bar_s)


def _bass(rng: np.random.Generator, arrangement: Arrangement, section: Section) -> list[Note]:
    """The song's bass pattern bar by bar over the chords."""
    beat = arrangement.beat_s
    notes = []
    for bar_start in _bar_starts(arrangement, section):
        chord = chord_at(arrangement.chords, bar_start)
        root = _bass_root(chord)
        tones = chord.pitches(root, root + SEMITONES_PER_OCTAVE)
        next_root = _bass_root(chord_at(arrangement.chords, bar_start + arrangement.bar_s))
        for onset, length, velocity, tone in BASS_PATTERNS[arrangement.styles["bass"]]:
            pitch = {
                "root": root,
                "fifth": root + FIFTH,
                "chord": int(tones[rng.integers(len(tones))]),
                "approach": next_root + int(rng.choice((-1, 1))),
            }[tone]
            notes.append(_note(rng, bar_start + onset * beat, length * beat, pitch, velocity))
    return [n for n in notes if n.start_s < section.end_s]


def _voicing(chord: Chord, low: int, high: int, previous: Sequence[int] | None, size: int) -> list[int]:
    """``size`` chord tones within ``[low, high]``, the inversion closest to the ``previous`` voicing."""
    pitches = chord.pitches(low, high)
    options = [list(pitches[i : i + size]) for i in range(len(pitches) - size + 1)]
    if previous is None:
        return options[len(options) // 2]
    centre = float(np.mean(previous))
    return min(options, key=lambda v: abs(float(np.mean(v)) - centre))


def _comp(rng: np.random.Generator, arrangement: Arrangement, section: Section) -> list[Note]:
    """Voice-led chords in the song's comping pattern; guitars strum."""
    beat = arrangement.beat_s
    strum = STRUM_S if arrangement.instruments["comp"].gm_program in GUITAR_PROGRAMS else 0.0
    notes: list[Note] = []
    voicing = None
    for bar_start in _bar_starts(arrangement, section):
        chord = chord_at(arrangement.chords, bar_start)
        voicing = _voicing(chord, *COMP_RANGE, voicing, len(chord.pitch_classes))
        for onset, length, velocity in COMP_PATTERNS[arrangement.styles["comp"]]:
            for i, pitch in enumerate(voicing):
                notes.append(_note(rng, bar_start + onset * beat + i * strum, length * beat, pitch, velocity))
    return [n for n in notes if n.start_s < section.end_s]


def _pad(rng: np.random.Generator, arrangement: Arrangement, section: Section) -> list[Note]:
    """Each chord held for its whole span, voice-led."""
    notes: list[Note] = []
    voicing = None
    for span in _spans_in(arrangement, section):
        voicing = _voicing(span.chord, *PAD_RANGE, voicing, PAD_VOICES)
        notes += [_note(rng, span.start_s, span.end_s - span.start_s, p, PAD_VELOCITY) for p in voicing]
    return notes


def _arp(rng: np.random.Generator, arrangement: Arrangement, section: Section) -> list[Note]:
    """Broken chords in eighths or (at slower tempos) sixteenths, accented on the beat."""
    style = arrangement.styles["arp"]
    step_s = arrangement.beat_s / (4 if arrangement.tempo_bpm <= ARP_SIXTEENTHS_MAX_BPM else 2)
    notes = []
    for span in _spans_in(arrangement, section):
        tones = list(span.chord.pitches(*ARP_RANGE))[:ARP_MAX_TONES]
        order = {"up": tones, "down": tones[::-1], "updown": tones + tones[-2:0:-1]}.get(style, tones)
        steps = round((span.end_s - span.start_s) / step_s)
        for i in range(steps):
            pitch = order[i % len(order)] if style != "random" else tones[rng.integers(len(tones))]
            accent = ARP_ACCENT if (i * step_s) % arrangement.beat_s < 1e-6 else 0.0
            notes.append(_note(rng, span.start_s + i * step_s, LEGATO * step_s, pitch, ARP_VELOCITY + accent))
    return [n for n in notes if n.start_s < section.end_s]


def _lead(
    rng: np.random.Generator, arrangement: Arrangement, phrases: Sequence[Phrase], duration_s: float
) -> list[Note]:
    """Melodies in the longer gaps between vocal phrases, and now and then a counter-line under one."""
    grid = arrangement.beat_s / 2
    bounds = [0.0] + [t for p in phrases for t in (p.start_s, p.end_s)] + [duration_s]
    gaps = [(bounds[i] + LEAD_MARGIN_S, bounds[i + 1] - LEAD_MARGIN_S) for i in range(0, len(bounds), 2)]
    spans = [
        (np.ceil(a / grid) * grid, np.floor(b / grid) * grid)
        for a, b in gaps
        if b - a >= LEAD_MIN_GAP_S and rng.random() < LEAD_GAP_PROBABILITY
    ]
    spans += [(p.start_s, p.end_s) for p in phrases if rng.random() < LEAD_COUNTERLINE_PROBABILITY]
    notes = []
    for start, end in sorted(spans):
        for n in write_melody(rng, arrangement.key, arrangement.chords, start, end, grid, LEAD_RANGE):
            notes.append(_note(rng, n.start_s, LEGATO * (n.end_s - n.start_s), n.pitch, n.velocity))
    return notes
