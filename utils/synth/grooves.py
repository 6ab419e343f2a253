"""Drum grooves: one bar of General MIDI drum hits in a style, with cymbal changes, crashes and fills.

Patterns are written on a 16-step grid per 4/4 bar: ``x`` a full hit, ``o`` a ghost note, ``.`` a rest.
"""

from __future__ import annotations

import numpy as np

from utils.synth.theory import Note

STEPS_PER_BAR = 16
STEPS_PER_BEAT = 4
KICK, STICK, SNARE, CLAP = 36, 37, 38, 39
HAT_CLOSED, HAT_OPEN, RIDE, CRASH = 42, 46, 51, 49
TOM_HIGH, TOM_MID, TOM_LOW = 50, 47, 43
FILL_VOICES = (SNARE, TOM_HIGH, TOM_MID, TOM_LOW)

# style -> drum -> pattern; HAT_CLOSED stands for "the time-keeping cymbal" and may become a ride or open hat.
GROOVES: dict[str, dict[int, str]] = {
    "rock": {KICK: "x.....x.x.......", SNARE: "....x.......x...", HAT_CLOSED: "x.x.x.x.x.x.x.x."},
    "pop": {KICK: "x......x..x.....", SNARE: "....x.......x...", HAT_CLOSED: "x.x.x.x.x.x.x.x."},
    "four_on_floor": {
        KICK: "x...x...x...x...",
        CLAP: "....x.......x...",
        HAT_OPEN: "..x...x...x...x.",
        HAT_CLOSED: "x...x...x...x...",
    },
    "half_time": {KICK: "x.......x.x.....", SNARE: "........x.......", HAT_CLOSED: "x.x.x.x.x.x.x.x."},
    "funk": {KICK: "x..x..x...x..x..", SNARE: "....x..o.o..x..o", HAT_CLOSED: "xoxoxoxoxoxoxoxo"},
    "ballad": {KICK: "x.......x.......", STICK: "....x.......x...", HAT_CLOSED: "x...x...x...x..."},
    "shuffle": {KICK: "x.....x.x.......", SNARE: "....x.......x...", HAT_CLOSED: "x.x.x.x.x.x.x.x."},
}
SWING = {"shuffle": 0.66}  # where the off-beat eighth falls within the beat, 0.5 = straight
HIT_VELOCITY = 0.85
GHOST_VELOCITY = 0.4
BEAT_ACCENT = 0.1
VELOCITY_JITTER = 0.06
TIMING_JITTER_S = 0.004
FILL_MIN_STEPS = 4
FILL_MAX_STEPS = 8
FILL_HIT_PROBABILITY = 0.8
CRASH_VELOCITY = 0.9


def drum_bar(
    rng: np.random.Generator,
    style: str,
    bar_start_s: float,
    beat_s: float,
    cymbal: int,
    crash: bool,
    fill: bool,
) -> list[Note]:
    """Hits of one bar of ``style``, time-keeping on ``cymbal``, with an opening crash and/or closing fill."""
    step_s = beat_s / STEPS_PER_BEAT
    fill_steps = int(rng.integers(FILL_MIN_STEPS // 2, FILL_MAX_STEPS // 2 + 1)) * 2 if fill else 0
    fill_from = STEPS_PER_BAR - fill_steps
    hits: list[tuple[int, int, float]] = []
    for drum, pattern in GROOVES[style].items():
        voice = cymbal if drum == HAT_CLOSED else drum
        for step, mark in enumerate(pattern):
            if mark == "." or (step >= fill_from and drum != KICK):
                continue
            velocity = HIT_VELOCITY if mark == "x" else GHOST_VELOCITY
            if step % STEPS_PER_BEAT == 0:
                velocity += BEAT_ACCENT
            hits.append((step, voice, velocity))
    for step in range(fill_from, STEPS_PER_BAR):
        if rng.random() < FILL_HIT_PROBABILITY:
            progress = (step - fill_from) / max(1, fill_steps)
            voice = FILL_VOICES[min(len(FILL_VOICES) - 1, int(progress * len(FILL_VOICES) + rng.random()))]
            hits.append((step, voice, 0.6 + 0.35 * progress))
    if crash:
        hits.append((0, CRASH, CRASH_VELOCITY))
    swing = SWING.get(style, 0.5)
    notes = []
    for step, voice, velocity in hits:
        beat, sub = divmod(step, STEPS_PER_BEAT)
        offset = beat + (swing if sub == 2 else sub / STEPS_PER_BEAT)
        onset = max(0.0, bar_start_s + offset * beat_s + rng.normal(0.0, TIMING_JITTER_S))
        velocity = float(np.clip(velocity + rng.normal(0.0, VELOCITY_JITTER), 0.1, 1.0))
        notes.append(Note(onset, onset + step_s, voice, velocity))
    return notes
