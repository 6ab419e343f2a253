"""Mixing rendered parts into MUSDB stems: levels, pans, reverb, vocal gate, vocal-to-accompaniment ratio.

Each accompaniment part is brought to a reference loudness over the time it plays, then to a drawn level, so
the balance does not depend on the backend. Drums and the pitched "other" parts share one room reverb,
vocals get their own; bass stays dry. Reverb is part of the stem it belongs to, as in MUSDB18.

The vocal stem is multiplied by a gate that is one on every ``[phrase start, tail end)`` and exactly zero
elsewhere, where the tail end is the phrase end plus the singer's release plus the vocal reverb's pre-delay
and RT60 (by then the reverb is 60 dB down). The vocal-to-accompaniment ratio is set and measured on the
planned voiced samples only (phrase start to phrase end, tails excluded), over both channels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from utils.synth.arrange import PART_STEMS
from utils.synth.dsp import pan, reverb_ir, reverberate, rms
from utils.synth.plan import Phrase, span_mask
from utils.synth.voice import RELEASE_S

STEMS = ("vocals", "drums", "bass", "other")
REFERENCE_RMS = 0.1
PART_LEVELS_DB = {
    "drums": (-1.0, 2.0),
    "bass": (-3.0, 1.0),
    "comp": (-5.0, 0.0),
    "pad": (-12.0, -6.0),
    "arp": (-10.0, -4.0),
    "lead": (-4.0, 1.0),
}
PART_SENDS_DB: dict[str, tuple[float, float] | None] = {
    "drums": (-24.0, -14.0),
    "bass": None,
    "comp": (-18.0, -9.0),
    "pad": (-14.0, -6.0),
    "arp": (-16.0, -8.0),
    "lead": (-16.0, -8.0),
}
PART_PAN_WIDTH = {"drums": 0.0, "bass": 0.05, "comp": 0.5, "pad": 0.1, "arp": 0.6, "lead": 0.3}
VOCAL_PAN_WIDTH = 0.15
VOCAL_SEND_DB = (-16.0, -7.0)
ROOM_RT60_S = (0.4, 1.6)
VOCAL_RT60_S = (0.3, 1.0)
PRE_DELAY_S = (0.005, 0.03)
PEAK_DBFS = (-6.0, -1.0)
GATE_FADE_S = 0.05


@dataclass(frozen=True)
class MixSettings:
    """A song's mix, drawn once: per-part level (dB), pan, reverb send (dB or None), and the rooms."""

    levels_db: dict[str, float]
    pans: dict[str, float]
    sends_db: dict[str, float | None]
    vocal_pan: float
    vocal_send_db: float
    room_rt60_s: float
    room_pre_delay_s: float
    vocal_rt60_s: float
    vocal_pre_delay_s: float
    peak_dbfs: float

    @property
    def vocal_tail_s(self) -> float:
        """From a phrase's end to where its vocal release and reverb have died away."""
        return RELEASE_S + self.vocal_pre_delay_s + self.vocal_rt60_s


def draw_mix(rng: np.random.Generator, parts: Sequence[str]) -> MixSettings:
    """Random levels, pans, sends and rooms for ``parts``."""
    sends = {}
    for part in parts:
        bounds = PART_SENDS_DB[part]
        sends[part] = None if bounds is None else float(rng.uniform(*bounds))
    return MixSettings(
        levels_db={p: float(rng.uniform(*PART_LEVELS_DB[p])) for p in parts},
        pans={p: float(rng.uniform(-PART_PAN_WIDTH[p], PART_PAN_WIDTH[p])) for p in parts},
        sends_db=sends,
        vocal_pan=float(rng.uniform(-VOCAL_PAN_WIDTH, VOCAL_PAN_WIDTH)),
        vocal_send_db=float(rng.uniform(*VOCAL_SEND_DB)),
        room_rt60_s=float(rng.uniform(*ROOM_RT60_S)),
        room_pre_delay_s=float(rng.uniform(*PRE_DELAY_S)),
        vocal_rt60_s=float(rng.uniform(*VOCAL_RT60_S)),
        vocal_pre_delay_s=float(rng.uniform(*PRE_DELAY_S)),
        peak_dbfs=float(rng.uniform(*PEAK_DBFS)),
    )


def mix_stems(
    rng: np.random.Generator,
    parts: Mapping[str, np.ndarray],
    part_masks: Mapping[str, np.ndarray],
    dry_vocals: np.ndarray,
    phrases: Sequence[Phrase],
    settings: MixSettings,
    vocal_to_accompaniment_db: float,
    sample_rate: int,
) -> dict[str, np.ndarray]:
    """Float32 stems ``(2, samples)`` named as in ``STEMS`` from parts ``(2, samples)`` and mono vocals.

    ``part_masks`` marks where each part plays (for its loudness); ``dry_vocals`` is ``(samples,)``.
    """
    num_samples = dry_vocals.size
    stems = {name: np.zeros((2, num_samples)) for name in STEMS}
    sends = {name: np.zeros((2, num_samples)) for name in STEMS}
    for part, audio in parts.items():
        loudness = rms(audio, part_masks[part])
        if loudness == 0.0:
            continue
        gain = REFERENCE_RMS / loudness * 10.0 ** (settings.levels_db[part] / 20.0)
        placed = pan(gain * audio, settings.pans[part])
        stem = PART_STEMS[part]
        stems[stem] += placed
        send_db = settings.sends_db[part]
        if send_db is not None:
            sends[stem] += 10.0 ** (send_db / 20.0) * placed
    room = reverb_ir(rng, settings.room_rt60_s, settings.room_pre_delay_s, sample_rate)
    for stem in ("drums", "other"):
        if sends[stem].any():
            stems[stem] += reverberate(sends[stem], room)

    vocals = pan(np.stack([dry_vocals, dry_vocals]), settings.vocal_pan)
    if phrases:
        vocal_room = reverb_ir(rng, settings.vocal_rt60_s, settings.vocal_pre_delay_s, sample_rate)
        vocals = vocals + 10.0 ** (settings.vocal_send_db / 20.0) * reverberate(vocals, vocal_room)
    vocals *= vocal_gate(phrases, settings.vocal_tail_s, num_samples, sample_rate)
    voiced = span_mask([(p.start_s, p.end_s) for p in phrases], num_samples, sample_rate)
    accompaniment = stems["drums"] + stems["bass"] + stems["other"]
    if voiced.any():
        ratio = rms(vocals, voiced) / rms(accompaniment, voiced)
        vocals *= 10.0 ** (vocal_to_accompaniment_db / 20.0) / ratio
    stems["vocals"] = vocals
    peak = float(np.max(np.abs(sum(stems.values()))))
    gain = 10.0 ** (settings.peak_dbfs / 20.0) / peak
    return {name: (gain * audio).astype(np.float32) for name, audio in stems.items()}


def vocal_gate(phrases: Sequence[Phrase], tail_s: float, num_samples: int, sample_rate: int) -> np.ndarray:
    """``(samples,)`` gain: one from each phrase start to ``tail_s`` after its end (fading), else zero."""
    gate = np.zeros(num_samples)
    fade = round(GATE_FADE_S * sample_rate)
    ramp = np.linspace(1.0, 0.0, fade + 1)[1:]
    for phrase in phrases:
        start = round(phrase.start_s * sample_rate)
        stop = min(num_samples, round((phrase.end_s + tail_s) * sample_rate))
        segment = np.ones(stop - start)
        tail = min(fade, segment.size)
        if tail:
            segment[-tail:] = ramp[-tail:]
        gate[start:stop] = np.maximum(gate[start:stop], segment)
    return gate
