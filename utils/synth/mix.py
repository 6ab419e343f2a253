"""Mixing rendered parts into MUSDB stems: levels, pans, reverb, vocal gate, vocal-to-accompaniment ratio.

Each accompaniment part is brought to a reference loudness over the time it plays, then to a drawn level, so
the balance does not depend on the backend. Drums and the pitched "other" parts share one room reverb,
vocals get their own; bass stays dry. Reverb is part of the stem it belongs to, as in MUSDB18.

Then the mix is made less dry, as an engineer would: every stem gets a drawn low and high shelf EQ, the
vocals a compressor before their reverb, and the whole mix a bus compressor whose gain, computed from the sum,
is applied to every stem alike (so the stems still sum to the mixture).

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
from utils.synth.dsp import compressor_gain, pan, reverb_ir, reverberate, rms, shelf_eq
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
EQ_SHELF_DB = (-4.0, 4.0)  # per stem, low and high shelf gains
EQ_LOW_HZ = (120.0, 300.0)
EQ_HIGH_HZ = (3000.0, 8000.0)
VOCAL_COMPRESSOR_RATIO = (1.5, 5.0)
VOCAL_COMPRESSOR_THRESHOLD_DB = (-18.0, -6.0)  # re the dry vocal's RMS while singing
VOCAL_COMPRESSOR_TIME_S = 0.02
BUS_COMPRESSOR_RATIO = (1.0, 4.0)  # 1: no bus compression
BUS_COMPRESSOR_THRESHOLD_DB = (-12.0, -3.0)  # re the mix's RMS
BUS_COMPRESSOR_TIME_S = 0.05


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
    eq_db: dict[str, tuple[float, float]]  # per stem: (low shelf, high shelf) gains
    eq_hz: dict[str, tuple[float, float]]  # per stem: (low shelf, high shelf) corners
    vocal_compressor: tuple[float, float]  # (threshold dB re the sung RMS, ratio)
    bus_compressor: tuple[float, float]  # (threshold dB re the mix RMS, ratio)

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
        eq_db={s: (float(rng.uniform(*EQ_SHELF_DB)), float(rng.uniform(*EQ_SHELF_DB))) for s in STEMS},
        eq_hz={s: (float(rng.uniform(*EQ_LOW_HZ)), float(rng.uniform(*EQ_HIGH_HZ))) for s in STEMS},
        vocal_compressor=(
            float(rng.uniform(*VOCAL_COMPRESSOR_THRESHOLD_DB)),
            float(rng.uniform(*VOCAL_COMPRESSOR_RATIO)),
        ),
        bus_compressor=(
            float(rng.uniform(*BUS_COMPRESSOR_THRESHOLD_DB)),
            float(rng.uniform(*BUS_COMPRESSOR_RATIO)),
        ),
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

    for stem in ("drums", "bass", "other"):
        stems[stem] = _equalise(stems[stem], stem, settings, sample_rate)
    vocals = pan(np.stack([dry_vocals, dry_vocals]), settings.vocal_pan)
    if phrases:
        vocals = _equalise(vocals, "vocals", settings, sample_rate)
        threshold_db, ratio = settings.vocal_compressor
        sung_db = 20.0 * np.log10(max(rms(vocals, np.abs(dry_vocals) > 0), 1e-12))
        vocals = vocals * compressor_gain(vocals, sung_db + threshold_db, ratio, VOCAL_COMPRESSOR_TIME_S, sample_rate)
        vocal_room = reverb_ir(rng, settings.vocal_rt60_s, settings.vocal_pre_delay_s, sample_rate)
        vocals = vocals + 10.0 ** (settings.vocal_send_db / 20.0) * reverberate(vocals, vocal_room)
    vocals *= vocal_gate(phrases, settings.vocal_tail_s, num_samples, sample_rate)
    voiced = span_mask([(p.start_s, p.end_s) for p in phrases], num_samples, sample_rate)
    stems["vocals"] = _set_ratio(vocals, stems, voiced, vocal_to_accompaniment_db)
    mix = sum(stems.values())
    threshold_db, ratio = settings.bus_compressor
    mix_db = 20.0 * np.log10(max(rms(mix), 1e-12))
    bus_gain = compressor_gain(mix, mix_db + threshold_db, ratio, BUS_COMPRESSOR_TIME_S, sample_rate)
    stems = {name: audio * bus_gain for name, audio in stems.items()}
    stems["vocals"] = _set_ratio(stems["vocals"], stems, voiced, vocal_to_accompaniment_db)
    peak = float(np.max(np.abs(sum(stems.values()))))
    gain = 10.0 ** (settings.peak_dbfs / 20.0) / peak
    return {name: (gain * audio).astype(np.float32) for name, audio in stems.items()}


def _equalise(audio: np.ndarray, stem: str, settings: MixSettings, sample_rate: int) -> np.ndarray:
    (low_db, high_db), (low_hz, high_hz) = settings.eq_db[stem], settings.eq_hz[stem]
    return shelf_eq(audio, low_db, high_db, low_hz, high_hz, sample_rate)


def _set_ratio(
    vocals: np.ndarray, stems: Mapping[str, np.ndarray], voiced: np.ndarray, vocal_to_accompaniment_db: float
) -> np.ndarray:
    """``vocals`` scaled to the vocal-to-accompaniment ratio on the voiced samples (unchanged when none)."""
    if not voiced.any():
        return vocals
    accompaniment = stems["drums"] + stems["bass"] + stems["other"]
    ratio = rms(vocals, voiced) / rms(accompaniment, voiced)
    return vocals * 10.0 ** (vocal_to_accompaniment_db / 20.0) / ratio


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
