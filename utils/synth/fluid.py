"""FluidSynth backend: render parts with a full-band General MIDI soundfont, one stereo output per part.

Needs Debian's ``libfluidsynth3`` and ``fluid-soundfont-gm`` (FluidR3_GM, sampled at 44.1 kHz and full-band)
plus PyPI's ``pyfluidsynth``. Small soundfonts such as TimGM6mb stop near 11.5 kHz and would teach a model
that energy above 11 kHz means voice, so they are deliberately not looked for.

Determinism: a FluidSynth instance keeps per-voice state across notes, so reusing one between renders makes
the output depend on what it rendered before. Every call builds a fresh synthesizer (with dynamic sample
loading the soundfont opens in milliseconds) and renders all parts in one pass, each part on its own MIDI
channel routed to its own audio group, with FluidSynth's reverb and chorus off (the mixer adds its own).
"""

from __future__ import annotations

import ctypes
import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from utils.synth.theory import Note

logger = logging.getLogger(__name__)

SOUNDFONT_PATH = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SYNTH_GAIN = 0.5
DRUM_BANK = 128
MODULATION_CC = 1
MIDI_MAX = 127
SYNTH_SETTINGS = {
    "synth.reverb.active": 0,
    "synth.chorus.active": 0,
    "synth.dynamic-sample-loading": 1,
    "synth.polyphony": 512,
}
BYTES_PER_SAMPLE = 4


@dataclass(frozen=True)
class FluidPart:
    """Notes to play on one channel with GM ``program`` in ``bank`` (128 = drum kits), CC1 ``modulation``."""

    notes: Sequence[Note]
    program: int
    bank: int = 0
    modulation: int = 0


@functools.lru_cache(maxsize=1)
def _fluidsynth() -> ModuleType | None:
    """The ``fluidsynth`` module, or None when it or its shared library is missing."""
    try:
        import fluidsynth
    except (ImportError, OSError) as error:
        logger.debug("pyfluidsynth unavailable: %s", error)
        return None
    return fluidsynth


def fluidsynth_available() -> bool:
    """Whether pyfluidsynth imports and the full-band soundfont is installed."""
    return _fluidsynth() is not None and SOUNDFONT_PATH.is_file()


def render_parts(parts: Mapping[str, FluidPart], num_samples: int, sample_rate: int) -> dict[str, np.ndarray]:
    """Render every part to float32 ``(2, samples)`` with a fresh synthesizer; same input, same output."""
    fluidsynth = _fluidsynth()
    if fluidsynth is None or not SOUNDFONT_PATH.is_file():
        raise RuntimeError("FluidSynth backend needs pyfluidsynth, libfluidsynth3 and fluid-soundfont-gm")
    names = list(parts)
    groups = len(names)
    settings = {**SYNTH_SETTINGS, "synth.audio-groups": groups, "synth.audio-channels": groups}
    synth = fluidsynth.Synth(gain=SYNTH_GAIN, samplerate=sample_rate, **settings)
    try:
        soundfont = synth.sfload(str(SOUNDFONT_PATH))
        for channel, name in enumerate(names):
            part = parts[name]
            synth.program_select(channel, soundfont, part.bank, part.program)
            synth.cc(channel, MODULATION_CC, part.modulation)
        out = np.zeros((2 * groups, num_samples), dtype=np.float32)
        process = _process_function(fluidsynth)
        cursor = 0
        for time, events in _events(parts, names, sample_rate):
            if time >= num_samples:
                break
            cursor = _render(process, synth, out, cursor, time)
            for is_on, channel, pitch, velocity in events:
                if is_on:
                    synth.noteon(channel, pitch, velocity)
                else:
                    synth.noteoff(channel, pitch)
        _render(process, synth, out, cursor, num_samples)
    finally:
        synth.delete()
    return {name: out[2 * i : 2 * i + 2] for i, name in enumerate(names)}


def _events(
    parts: Mapping[str, FluidPart], names: Sequence[str], sample_rate: int
) -> list[tuple[int, list[tuple[bool, int, int, int]]]]:
    """Note-on/off events grouped by sample, note-offs first so repeated pitches retrigger."""
    flat = []
    for channel, name in enumerate(names):
        for note in parts[name].notes:
            velocity = int(np.clip(round(note.velocity * MIDI_MAX), 1, MIDI_MAX))
            flat.append((round(note.start_s * sample_rate), 1, channel, note.pitch, velocity))
            flat.append((round(note.end_s * sample_rate), 0, channel, note.pitch, 0))
    flat.sort()
    grouped: dict[int, list[tuple[bool, int, int, int]]] = {}
    for time, is_on, channel, pitch, velocity in flat:
        grouped.setdefault(time, []).append((bool(is_on), channel, pitch, velocity))
    return sorted(grouped.items())


def _process_function(fluidsynth: ModuleType) -> ctypes._CFuncPtr:
    """``fluid_synth_process`` from the loaded library, which pyfluidsynth does not wrap."""
    prototype = ctypes.CFUNCTYPE(
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_void_p),
    )
    return prototype(("fluid_synth_process", fluidsynth._fl))


def _render(process: ctypes._CFuncPtr, synth: object, out: np.ndarray, cursor: int, until: int) -> int:
    """Render samples ``[cursor, until)`` of every group into ``out`` ``(2 * groups, samples)``."""
    if until <= cursor:
        return cursor
    pointers = (ctypes.c_void_p * out.shape[0])(*[row.ctypes.data + cursor * BYTES_PER_SAMPLE for row in out])
    status = process(synth.synth, until - cursor, 0, None, out.shape[0], pointers)
    if status != 0:
        raise RuntimeError(f"fluid_synth_process failed with status {status}")
    return until
