"""Synthetic songs with known stems and sparse vocals, laid out like MUSDB18-HQ.

``generate_song(seed, config)`` composes an arrangement (key, tempo, sections, chords, drums with fills,
bass, comping, pad, arpeggios and sometimes a lead instrument as a hard negative), plans vocal phrases to
cover a chosen fraction of the song, writes a melody over the chords, sings it with a source-filter voice,
sometimes doubles it or adds a harmony a diatonic third above, renders the accompaniment with FluidSynth or
numpy (the drums, when Debian's ``hydrogen-drumkits`` is there, often with a real recorded kit: see
``utils.synth.recorded``), and mixes everything with EQ, compression and reverb at a chosen
vocal-to-accompaniment ratio. The same seed and config give bit-identical audio within a backend.

``write_song`` saves a MUSDB18-HQ folder (``mixture``, ``vocals``, ``drums``, ``bass``, ``other`` as float
WAV) plus ``accompaniment.wav`` and ``meta.json``; ``files`` narrows that to what a consumer reads (a voice
detector needs only ``mixture`` and ``vocals``: a third of the disk). What a phrase boundary means is explained in
``utils.synth.plan``; how the vocal stem is gated and the ratio measured, in ``utils.synth.mix``.

CLI: ``python -m utils.synth OUT_DIR --count N --seed0 S --duration 30 [--vocal-fraction F] [--backend B]
[--recordings train|held_out|none] [--files mixture vocals]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from utils.synth.arrange import PART_STEMS, Arrangement, compose, write_parts, write_vocal_line
from utils.synth.dsp import rms
from utils.synth.fluid import DRUM_BANK, FluidPart, fluidsynth_available, render_parts
from utils.synth.mix import STEMS, MixSettings, draw_mix, mix_stems
from utils.synth.numpy_instruments import render_pitched
from utils.synth.numpy_drums import render_drums
from utils.synth.plan import Phrase, plan_phrases, span_mask
from utils.synth.recorded import SPLITS, Kit, find_kits, render_recorded_drums
from utils.synth.theory import Key, Note
from utils.synth.voice import VOICE_RANGES, SungNote, Voice, draw_lyrics, draw_voice, sing

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "1.1.0"
BACKENDS = ("auto", "numpy", "fluidsynth")
RECORDINGS = (*SPLITS, "none")  # which recorded kits a song may use: training's, the held-out ones, or none
RECORDED_DRUMS_PROBABILITY = 0.6  # when kits of the chosen split are installed
DOUBLE_PROBABILITY = 0.3  # a second take of the lead line, slightly late
DOUBLE_DELAY_S = (0.01, 0.035)
DOUBLE_LEVEL_DB = (-9.0, -3.0)
HARMONY_PROBABILITY = 0.25  # a harmony a diatonic third above the lead, on some phrases
HARMONY_PHRASE_PROBABILITY = 0.6
HARMONY_LEVEL_DB = (-10.0, -4.0)
HARMONY_SCALE_STEPS = 2  # a third: two scale steps
VOCAL_FRACTION_RANGE = (0.05, 0.6)  # drawn when the config leaves it open
VOCAL_FRACTION_LIMITS = (0.0, 0.8)  # accepted when given
VAR_RANGE_DB = (-10.0, 5.0)
SAMPLE_RATE_LIMITS = (8000, 96000)
LEAD_MODULATION = 48  # CC1 for the FluidSynth lead: the soundfont's vibrato, a voice-like cue
FILES = ("mixture", "vocals", "drums", "bass", "other", "accompaniment")
PHRASE_DEFINITION = (
    "start_s: onset of the first syllable; end_s: end of the last note, where the release starts; "
    "tail_end_s: end of release and vocal reverb, after which the vocals stem is exactly zero until the next "
    "phrase. vocal_fraction counts [start_s, end_s) only."
)
TIME_DECIMALS = 6


@dataclass(frozen=True)
class SongConfig:
    """What to generate; ``None`` fields are drawn from the seed."""

    duration_s: float = 30.0
    vocal_fraction: float | None = None
    vocal_to_accompaniment_db: float | None = None
    sample_rate: int = 44100
    backend: str = "auto"
    recordings: str = "train"

    def __post_init__(self) -> None:
        if not self.duration_s > 0:
            raise ValueError(f"duration_s must be positive, got {self.duration_s}")
        low, high = VOCAL_FRACTION_LIMITS
        if self.vocal_fraction is not None and not low <= self.vocal_fraction <= high:
            raise ValueError(f"vocal_fraction must be in [{low}, {high}], got {self.vocal_fraction}")
        if self.vocal_to_accompaniment_db is not None and not np.isfinite(self.vocal_to_accompaniment_db):
            raise ValueError("vocal_to_accompaniment_db must be finite")
        if not SAMPLE_RATE_LIMITS[0] <= self.sample_rate <= SAMPLE_RATE_LIMITS[1]:
            raise ValueError(f"sample_rate must be in {SAMPLE_RATE_LIMITS}, got {self.sample_rate}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.recordings not in RECORDINGS:
            raise ValueError(f"recordings must be one of {RECORDINGS}, got {self.recordings!r}")


@dataclass
class Song:
    """Stems ``"vocals"``, ``"drums"``, ``"bass"``, ``"other"``: float32 ``(2, samples)``; plus metadata."""

    stems: dict[str, np.ndarray]
    meta: dict
    sample_rate: int

    @property
    def mixture(self) -> np.ndarray:
        """``(2, samples)`` float32: vocals + drums + bass + other."""
        return self.stems["vocals"] + self.stems["drums"] + self.stems["bass"] + self.stems["other"]

    @property
    def accompaniment(self) -> np.ndarray:
        """``(2, samples)`` float32: drums + bass + other."""
        return self.stems["drums"] + self.stems["bass"] + self.stems["other"]


@dataclass(frozen=True)
class _Score:
    """Everything decided before any audio is rendered."""

    arrangement: Arrangement
    phrases: list[Phrase]
    parts: dict[str, list[Note]]
    voice: Voice
    lines: list[list[SungNote]]
    vocal_fraction: float
    vocal_to_accompaniment_db: float
    mix: MixSettings
    double: tuple[float, float] | None  # (delay s, level dB) of a second take, or None
    harmony: list[list[SungNote]]  # harmony lines (possibly none), at ``harmony_db``
    harmony_db: float
    drum_kit: Kit | None  # a recorded kit, or None for the backend's drums


def resolve_backend(backend: str) -> str:
    """``"auto"`` becomes ``"fluidsynth"`` when it is installed with its soundfont, else ``"numpy"``."""
    if backend == "auto":
        return "fluidsynth" if fluidsynth_available() else "numpy"
    if backend == "fluidsynth" and not fluidsynth_available():
        raise RuntimeError("backend 'fluidsynth' needs pyfluidsynth, libfluidsynth3 and fluid-soundfont-gm")
    return backend


def generate_song(seed: int, config: SongConfig = SongConfig()) -> Song:
    """A song for ``seed``: bit-identical for the same seed, config and backend."""
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    backend = resolve_backend(config.backend)
    sample_rate = config.sample_rate
    num_samples = round(config.duration_s * sample_rate)
    score = _write_score(seed, config)
    parts = _render_parts(_stream(seed, "render"), backend, score, num_samples, sample_rate)
    masks = {
        part: span_mask([(n.start_s, n.end_s) for n in score.parts[part]], num_samples, sample_rate)
        for part in parts
    }
    dry_vocals = sing(_stream(seed, "singer"), score.lines, score.voice, num_samples, sample_rate)
    if score.double is not None:
        delay_s, level_db = score.double
        take = sing(_stream(seed, "double"), score.lines, score.voice, num_samples, sample_rate)
        delay = round(delay_s * sample_rate)
        dry_vocals[delay:] += 10.0 ** (level_db / 20.0) * take[: num_samples - delay]
    if score.harmony:
        harmony = sing(_stream(seed, "harmony"), score.harmony, score.voice, num_samples, sample_rate)
        dry_vocals += 10.0 ** (score.harmony_db / 20.0) * harmony
    stems = mix_stems(
        _stream(seed, "reverb"),
        parts,
        masks,
        dry_vocals,
        score.phrases,
        score.mix,
        score.vocal_to_accompaniment_db,
        sample_rate,
    )
    song = Song(stems, {}, sample_rate)
    song.meta = _meta(seed, config, backend, score, song)
    return song


def write_song(song: Song, folder: Path, files: Sequence[str] = FILES) -> None:
    """Write ``files`` (by default the MUSDB18-HQ layout and ``accompaniment``) as float WAVs, and ``meta.json``
    (which lists them), into ``folder``."""
    unknown = sorted(set(files) - set(FILES))
    if unknown or not files:
        raise ValueError(f"files must be a non-empty subset of {', '.join(FILES)}; got {', '.join(files) or 'none'}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    audio = {"mixture": song.mixture, **song.stems, "accompaniment": song.accompaniment}
    written = [name for name in FILES if name in files]
    for name in written:
        sf.write(folder / f"{name}.wav", audio[name].T, song.sample_rate, subtype="FLOAT")
    (folder / "meta.json").write_text(json.dumps({**song.meta, "files": written}, indent=2) + "\n")


def generate_dataset(
    root: Path, seeds: Iterable[int], config: SongConfig, files: Sequence[str] = FILES
) -> list[Path]:
    """Generate and write one song folder per seed (``song_000042``) under ``root``; returns the folders."""
    folders = []
    for seed in seeds:
        folder = Path(root) / f"song_{seed:06d}"
        write_song(generate_song(seed, config), folder, files)
        logger.info("wrote %s", folder)
        folders.append(folder)
    return folders


def _stream(seed: int, name: str) -> np.random.Generator:
    """An independent random stream per purpose, so changing one part of the generator spares the others."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _write_score(seed: int, config: SongConfig) -> _Score:
    """Arrangement, vocal plan, notes, singer, lyrics and mix for a seed."""
    arrangement = compose(_stream(seed, "form"), config.duration_s)
    targets = _stream(seed, "targets")
    drawn_fraction = float(targets.uniform(*VOCAL_FRACTION_RANGE))
    drawn_ratio = float(targets.uniform(*VAR_RANGE_DB))
    fraction = drawn_fraction if config.vocal_fraction is None else config.vocal_fraction
    ratio = drawn_ratio if config.vocal_to_accompaniment_db is None else config.vocal_to_accompaniment_db
    phrases = plan_phrases(_stream(seed, "plan"), config.duration_s, fraction, arrangement.beat_s)
    parts = write_parts(_stream(seed, "parts"), arrangement, phrases, config.duration_s)
    parts = {part: notes for part, notes in parts.items() if notes}
    voice = draw_voice(_stream(seed, "voice"))
    melodies = write_vocal_line(_stream(seed, "melody"), arrangement, phrases, VOICE_RANGES[voice.voice_type])
    lyrics = _stream(seed, "lyrics")
    lines = [draw_lyrics(lyrics, melody) for melody in melodies]
    mix = draw_mix(_stream(seed, "mix"), list(parts))
    layers = _stream(seed, "layers")
    double = None
    if layers.random() < DOUBLE_PROBABILITY:
        double = (float(layers.uniform(*DOUBLE_DELAY_S)), float(layers.uniform(*DOUBLE_LEVEL_DB)))
    harmony: list[list[SungNote]] = []
    if layers.random() < HARMONY_PROBABILITY:
        harmony = [
            _harmony_line(line, arrangement.key, VOICE_RANGES[voice.voice_type])
            for line in lines
            if layers.random() < HARMONY_PHRASE_PROBABILITY
        ]
    harmony_db = float(layers.uniform(*HARMONY_LEVEL_DB))
    kits = find_kits(config.recordings) if config.recordings in SPLITS and "drums" in parts else ()
    recorded = _stream(seed, "recorded")
    drum_kit = None
    if kits and recorded.random() < RECORDED_DRUMS_PROBABILITY:
        drum_kit = kits[recorded.integers(len(kits))]
    return _Score(
        arrangement, phrases, parts, voice, lines, fraction, ratio, mix, double, harmony, harmony_db, drum_kit
    )


def _harmony_line(line: Sequence[SungNote], key: Key, voice_range: tuple[int, int]) -> list[SungNote]:
    """``line`` a diatonic third higher (the same syllables), each note kept inside the singer's range."""
    low, high = voice_range
    scale = key.scale_pitches(low - 12, high + 12)
    harmony = []
    for sung in line:
        index = int(np.searchsorted(scale, sung.note.pitch))
        pitch = int(scale[min(index + HARMONY_SCALE_STEPS, scale.size - 1)])
        if pitch > high:
            pitch -= 12
        harmony.append(SungNote(replace(sung.note, pitch=pitch), sung.consonant, sung.vowel))
    return harmony


def _render_parts(
    rng: np.random.Generator, backend: str, score: _Score, num_samples: int, sample_rate: int
) -> dict[str, np.ndarray]:
    """Every part as float64 ``(2, samples)``: the drums with the recorded kit if drawn, the rest with the backend."""
    instruments = score.arrangement.instruments
    audio = {}
    to_render = dict(score.parts)
    if score.drum_kit is not None:
        drums = to_render.pop("drums")
        audio["drums"] = render_recorded_drums(rng, drums, score.drum_kit, num_samples, sample_rate)
    if backend == "fluidsynth":
        fluid_parts = {
            part: FluidPart(
                notes,
                instruments[part].gm_program,
                DRUM_BANK if part == "drums" else 0,
                LEAD_MODULATION if part == "lead" else 0,
            )
            for part, notes in to_render.items()
        }
        rendered = render_parts(fluid_parts, num_samples, sample_rate)
        return audio | {part: part_audio.astype(np.float64) for part, part_audio in rendered.items()}
    for part, notes in to_render.items():
        timbre = instruments[part].numpy_timbre
        if part == "drums":
            audio[part] = render_drums(rng, notes, timbre, num_samples, sample_rate)
        else:
            audio[part] = render_pitched(rng, notes, timbre, num_samples, sample_rate)
    return audio


def _meta(seed: int, config: SongConfig, backend: str, score: _Score, song: Song) -> dict:
    """Everything a user of the song may want to know, JSON-ready."""
    arrangement = score.arrangement
    duration_s = config.duration_s
    num_samples = song.stems["vocals"].shape[1]
    tail_s = score.mix.vocal_tail_s
    voiced = span_mask([(p.start_s, p.end_s) for p in score.phrases], num_samples, song.sample_rate)
    with_tails = span_mask(
        [(p.start_s, p.end_s + tail_s) for p in score.phrases], num_samples, song.sample_rate
    )
    accompaniment = song.accompaniment
    measured_ratio = None
    if voiced.any():
        measured_ratio = 20.0 * np.log10(rms(song.stems["vocals"], voiced) / rms(accompaniment, voiced))
    return _jsonable(
        {
            "generator": "utils.synth",
            "generator_version": GENERATOR_VERSION,
            "seed": seed,
            "backend": backend,
            "config": asdict(config),
            "sample_rate": song.sample_rate,
            "num_samples": num_samples,
            "duration_s": duration_s,
            "key": arrangement.key.name,
            "mode": arrangement.key.mode,
            "tempo_bpm": arrangement.tempo_bpm,
            "time_signature": "4/4",
            "styles": arrangement.styles,
            "instruments": [
                {
                    "part": part,
                    "stem": PART_STEMS[part],
                    "name": arrangement.instruments[part].name,
                    "gm_program": arrangement.instruments[part].gm_program,
                    "numpy_timbre": arrangement.instruments[part].numpy_timbre,
                    "level_db": score.mix.levels_db[part],
                    "pan": score.mix.pans[part],
                    "reverb_send_db": score.mix.sends_db[part],
                    "notes": len(score.parts[part]),
                }
                for part in score.parts
            ],
            "sections": [
                {
                    "name": s.name,
                    "start_s": s.start_s,
                    "end_s": s.end_s,
                    "parts": sorted(set(s.parts) & set(score.parts)),
                }
                for s in arrangement.sections
            ],
            "chords": [
                {"start_s": c.start_s, "end_s": c.end_s, "chord": c.chord.symbol} for c in arrangement.chords
            ],
            "drum_kit": None if score.drum_kit is None else {"name": score.drum_kit.name, "licence": score.drum_kit.licence},
            "voice": asdict(score.voice),
            "doubled": score.double is not None,
            "harmony_phrases": len(score.harmony),
            "vocal_phrases": [
                _phrase_meta(p, line, min(p.end_s + tail_s, duration_s))
                for p, line in zip(score.phrases, score.lines, strict=True)
            ],
            "phrase_definition": PHRASE_DEFINITION,
            "vocal_fraction_target": score.vocal_fraction,
            "vocal_fraction": float(voiced.mean()),
            "vocal_fraction_with_tails": float(with_tails.mean()),
            "vocal_to_accompaniment_db_target": score.vocal_to_accompaniment_db if score.phrases else None,
            "vocal_to_accompaniment_db": measured_ratio,
            "mix": {
                "vocal_pan": score.mix.vocal_pan,
                "vocal_reverb_send_db": score.mix.vocal_send_db,
                "vocal_rt60_s": score.mix.vocal_rt60_s,
                "room_rt60_s": score.mix.room_rt60_s,
                "peak_dbfs": score.mix.peak_dbfs,
                "eq_db": score.mix.eq_db,
                "vocal_compressor": score.mix.vocal_compressor,
                "bus_compressor": score.mix.bus_compressor,
            },
            "stems": list(STEMS),
        }
    )


def _phrase_meta(phrase: Phrase, line: Sequence[SungNote], tail_end_s: float) -> dict:
    return {
        "start_s": phrase.start_s,
        "end_s": phrase.end_s,
        "tail_end_s": tail_end_s,
        "lyrics": " ".join(n.syllable for n in line),
        "notes": [
            {"start_s": n.note.start_s, "end_s": n.note.end_s, "midi": n.note.pitch, "syllable": n.syllable}
            for n in line
        ],
    }


def _jsonable(value: object) -> object:
    """Plain JSON types with times rounded to ``TIME_DECIMALS``."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return round(float(value), TIME_DECIMALS)
    return value


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: generate ``--count`` songs from ``--seed0`` into ``OUT_DIR``."""
    parser = argparse.ArgumentParser(prog="python -m utils.synth", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder that receives one sub-folder per song")
    parser.add_argument("--count", type=int, default=10, help="number of songs")
    parser.add_argument("--seed0", type=int, default=0, help="seed of the first song; the others follow")
    parser.add_argument("--duration", type=float, default=30.0, help="song length in seconds")
    parser.add_argument(
        "--vocal-fraction",
        type=float,
        default=None,
        help="share of time with voice (default: drawn in 0.05-0.6 per song)",
    )
    parser.add_argument(
        "--vocal-to-accompaniment-db",
        type=float,
        default=None,
        help="vocal-to-accompaniment ratio on voiced samples (default: drawn in -10..5 dB)",
    )
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    parser.add_argument(
        "--recordings",
        choices=RECORDINGS,
        default="train",
        help="recorded drum kits (Debian's hydrogen-drumkits, when installed): training's, held-out, or none",
    )
    parser.add_argument(
        "--files",
        nargs="+",
        choices=FILES,
        default=list(FILES),
        help="which WAVs to write (default: all; a voice detector reads only mixture and vocals)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    config = SongConfig(
        args.duration,
        args.vocal_fraction,
        args.vocal_to_accompaniment_db,
        args.sample_rate,
        args.backend,
        args.recordings,
    )
    seeds: Iterable[int] = range(args.seed0, args.seed0 + args.count)
    if not args.quiet:
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            seeds = tqdm(seeds, total=args.count, unit="song")
    folders = generate_dataset(args.out_dir, seeds, config, args.files)
    print(f"wrote {len(folders)} songs to {args.out_dir} (backend: {resolve_backend(args.backend)})")

