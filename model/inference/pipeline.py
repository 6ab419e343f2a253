"""One song file in; stem files, the sung phrases and plot sketches out: what the CLI and the app both run.

    decode ─► separate ─► find the phrases ─► clean up ─► write the stems
    blocks    chunks      voice detectors     gate         the upload's layout, the chosen format

Memory stays flat whatever the song's length: audio moves in blocks; between the passes the mixture and the
raw vocals wait on disk (raw float32 in a scratch folder); only hop energies and voice probabilities (50
numbers a second each) and the plot sketches stay in memory.

1. Decode and separate, spooling the mixture and the vocals, measuring their energy and running the voice
   detectors on the way (the mixture-only one on the mixture as decoded, the with-stem one on each block of
   vocals beside its mixture).
2. Find the phrases; clean up between them (optional); bring each stem to the output layout (the upload's
   rate, channel count and length, or 44.1 kHz stereo) and spool it with its peak; sketch the plots.
3. Encode each spooled stem; its peak sets the gain that keeps the format from clipping (`write_audio`'s rule).

    separator = Separator(load_model().model)
    result = separate_file("song.mp3", separator, {"vocals": Path("v.flac"), "accompaniment": Path("a.flac")},
                           SongSettings(output=OutputSettings("flac")))
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.inference.separator import ACCOMPANIMENT, STEM_NAMES, VOCALS, Progress, SampleWindow, Separator
from model.stft import AUDIO_CHANNELS, SAMPLE_RATE
from utils.activity import ActivityParams, HopEnergy, VocalActivity, activity_from_energy, hop_samples
from utils.audio import (
    OUTPUT_FORMATS,
    AudioInfo,
    AudioSpool,
    LayoutConverter,
    WriteReport,
    open_audio,
    output_sample_rate,
    resampled_length,
    write_spool,
)
from utils.cleanup import GateSettings, gate_gain_block
from utils.sketch import SongSketch
from utils.voice_detector import (
    BOTH,
    MIXTURE_ONLY,
    WITH_STEM,
    FrameClassifier,
    VoiceStream,
    learned_activity,
    load_detector,
    mean_probability,
)

__all__ = [
    "OutputSettings", "SongSettings", "SongResult", "ProgressFn", "VOICE_DETECTORS", "choose_detectors",
    "separate_file",
]

logger = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
"""`progress(fraction 0..1, what is happening)`."""

# Progress shares of one song: the network takes almost all the time; writing is a few percent.
PROGRESS_SEPARATED = 0.85
PROGRESS_ANALYSED = 0.88
PROGRESS_WRITTEN = 0.95


@dataclass(frozen=True)
class OutputSettings:
    """How the stems are written."""

    fmt: str = "wav"
    bit_depth: int | None = None  # None: the format's default; MP3 has none
    keep_44k: bool = False  # 44.1 kHz stereo, instead of the upload's rate and channel count

    def __post_init__(self) -> None:
        if self.fmt not in OUTPUT_FORMATS:
            raise ValueError(f"output format must be one of {sorted(OUTPUT_FORMATS)}, got {self.fmt!r}")
        if self.bit_depth is not None and self.bit_depth not in OUTPUT_FORMATS[self.fmt]:
            allowed = OUTPUT_FORMATS[self.fmt] or "none"
            raise ValueError(f"bit depth for {self.fmt} must be one of {allowed}, got {self.bit_depth}")


AUTO_DETECTOR = "auto"
LEVEL_RULE = "level"
VOICE_DETECTORS = (AUTO_DETECTOR, BOTH, WITH_STEM, MIXTURE_ONLY, LEVEL_RULE)
"""Who decides where the voice is. "auto" (the default): both learned detectors together when the separator
holds the weights the with-stem one was trained on (`DetectorConfig.separation_weights`), else the
mixture-only one alone (`utils.voice_detector`); or name one of the others; or the level rule on the
separated stem (`utils.activity`). What each scores is in the voice detectors' card."""


@dataclass(frozen=True)
class SongSettings:
    """Everything about one song's run except the network's own settings (those live in the Separator).

    The defaults are the app's and the CLI's: the learned detector finds the phrases and the clean-up
    silences the vocal stem between them (the bundled model's card gives what that changes, measured by
    `scripts/evaluate.py` on its held-out songs).
    """

    output: OutputSettings = OutputSettings()
    clean_up: GateSettings | None = GateSettings()  # None: the vocal stem is left as the network made it
    voice_detector: str = AUTO_DETECTOR
    max_duration_s: float | None = None  # longer songs are refused (AudioTooLongError)
    sketch: bool = False  # gather what the waveform and spectrogram plots need

    def __post_init__(self) -> None:
        if self.voice_detector not in VOICE_DETECTORS:
            raise ValueError(f"voice_detector must be one of {VOICE_DETECTORS}, got {self.voice_detector!r}")


@dataclass(frozen=True)
class SongResult:
    """What one song's run produced; the stems are the files in `outputs`."""

    audio: AudioInfo
    activity: VocalActivity
    outputs: dict[str, WriteReport]  # by stem name
    sketch: SongSketch | None
    device: str
    precision: str  # what the network ran in: "fp32", "bf16" (CPU fast path) or "fp16"
    voice_detector: str  # who found the phrases: "both", "with-stem", "mixture-only" or "level"
    processing_s: float  # decoding and the network; finding phrases and writing excluded

    @property
    def warnings(self) -> tuple[str, ...]:
        """What decoding and writing changed, for the user (writing notes are prefixed with the stem)."""
        written = (f"{name.capitalize()}: {note}" for name, out in self.outputs.items() for note in out.warnings)
        return (*self.audio.warnings, *written)


def separate_file(
    path: str | Path,
    separator: Separator,
    targets: Mapping[str, Path],
    settings: SongSettings = SongSettings(),
    progress: ProgressFn | None = None,
    *,
    overwrite: bool = False,
    scratch_root: Path | None = None,
) -> SongResult:
    """Separate the song at `path` into the files `targets` (`{"vocals": …, "accompaniment": …}`).

    Raises the `utils.errors.SeparationError` family for what is wrong with the upload (before any target is
    written), FileExistsError for a target that exists unless `overwrite`. The input is only read.
    """
    if set(targets) != set(STEM_NAMES):
        raise ValueError(f"targets must name exactly {STEM_NAMES}, got {sorted(targets)}")
    report = progress or (lambda fraction, message: None)
    with tempfile.TemporaryDirectory(prefix="bsmamba2-", dir=scratch_root) as scratch:
        report(0.0, "Reading the file")
        started = time.perf_counter()
        detectors = choose_detectors(settings.voice_detector, separator)
        streams = [VoiceStream(detector, SAMPLE_RATE) for detector in detectors]
        mixture, vocals, info, energies, probability = _separate_to_spools(
            path, separator, Path(scratch), settings, streams, report
        )
        processing_s = time.perf_counter() - started

        report(PROGRESS_SEPARATED, "Finding where the voice is")
        activity = activity_from_energy(energies[VOCALS], SAMPLE_RATE, mixture=energies["mixture"])
        if detectors:
            activity = learned_activity(activity, probability, info.num_samples, SAMPLE_RATE, detectors[-1].config)

        report(PROGRESS_ANALYSED, "Writing the stems")
        layout = _output_layout(info, settings.output)
        spools = {name: AudioSpool(Path(scratch) / f"{name}.out.f32", layout.channels) for name in STEM_NAMES}
        sketch = SongSketch(info.num_samples, SAMPLE_RATE) if settings.sketch else None
        converters = {name: _converter(info, settings.output, layout.sample_rate) for name in STEM_NAMES}
        for stems in _cleaned_blocks(mixture, vocals, activity, settings.clean_up, sketch):
            for name, block in stems.items():
                spools[name].write(converters[name].convert(block))
        for name, spool in spools.items():
            spool.write(converters[name].finish())
        outputs = {}
        for name in STEM_NAMES:
            targets[name].parent.mkdir(parents=True, exist_ok=True)
            written = write_spool(
                targets[name], spools[name], layout.sample_rate, settings.output.fmt,
                settings.output.bit_depth, overwrite=overwrite,
            )
            notes = (layout.note,) if layout.note else ()
            outputs[name] = dataclasses.replace(written, warnings=(*notes, *written.warnings))
    report(PROGRESS_WRITTEN, "Written")
    decided_by = BOTH if len(detectors) > 1 else (detectors[0].config.variant if detectors else LEVEL_RULE)
    return SongResult(
        info, activity, outputs, sketch, str(separator.device), separator.precision, decided_by, processing_s
    )


def choose_detectors(choice: str, separator: Separator) -> tuple[FrameClassifier, ...]:
    """The learned detectors that `choice` (one of `VOICE_DETECTORS`) names for this separator, the
    with-stem one last (its hysteresis decides); none for the level rule. "auto" adds the with-stem detector
    only for the weights it learnt from."""
    if choice == LEVEL_RULE:
        return ()
    if choice == MIXTURE_ONLY:
        return (load_detector(variant=MIXTURE_ONLY),)
    with_stem = load_detector(variant=WITH_STEM)
    matches = with_stem.config.separation_weights == separator.weights_fingerprint
    if choice != AUTO_DETECTOR and not matches:
        logger.warning("the with-stem detector was trained on another separation model's stems")
    if choice == WITH_STEM:
        return (with_stem,)
    mixture_only = load_detector(variant=MIXTURE_ONLY)
    return (mixture_only, with_stem) if matches or choice == BOTH else (mixture_only,)


def _separate_to_spools(
    path: str | Path,
    separator: Separator,
    scratch: Path,
    settings: SongSettings,
    streams: list[VoiceStream],
    report: ProgressFn,
) -> tuple[AudioSpool, AudioSpool, AudioInfo, dict[str, HopEnergy], np.ndarray]:
    """Pass 1: decode and separate; the mixture and the vocals go to raw files, their energy is measured and
    the audio goes through the voice detectors' `streams`: the mixture as it is decoded, or (with-stem)
    beside its separated vocals. Their mean per-frame probability is returned; empty without any."""
    on_mixture = [s for s in streams if s.classifier.config.variant == MIXTURE_ONLY]
    with_stem = [s for s in streams if s.classifier.config.variant == WITH_STEM]
    waiting = SampleWindow(AUDIO_CHANNELS)  # decoded, not yet separated: read beside its vocals (with-stem)
    probabilities: dict[VoiceStream, list[np.ndarray]] = {stream: [] for stream in streams}
    hop = hop_samples(ActivityParams(), SAMPLE_RATE)
    energies = {"mixture": HopEnergy(AUDIO_CHANNELS, hop), VOCALS: HopEnergy(AUDIO_CHANNELS, hop)}
    mixture = AudioSpool(scratch / "mixture.f32", AUDIO_CHANNELS)
    vocals = AudioSpool(scratch / "vocals.f32", AUDIO_CHANNELS)
    with open_audio(path, max_duration_s=settings.max_duration_s) as audio:

        def decoded() -> Iterator[np.ndarray]:
            for block in audio.blocks():
                mixture.write(block)
                energies["mixture"].add(block)
                for stream in on_mixture:
                    probabilities[stream].append(stream.push(block))
                if with_stem:
                    waiting.append(block)
                yield block

        def on_chunks(done: Progress) -> None:
            fraction = PROGRESS_SEPARATED * done.fraction
            report(fraction, f"Separating: chunk {done.chunks_done} of {done.chunks_total}")

        announced = audio.announced_duration_s
        expected = None if announced is None else round(announced * SAMPLE_RATE)
        for block in separator.separate_stream(decoded(), on_chunks, expected):
            vocals.write(block)
            energies[VOCALS].add(block)
            if with_stem:
                beside = waiting.take_until(waiting.start + block.shape[1])
                for stream in with_stem:
                    probabilities[stream].append(stream.push(beside, block))
        info = audio.info()
    curves = [np.concatenate([*probabilities[stream], stream.finish()]) for stream in streams]
    return mixture, vocals, info, energies, mean_probability(curves) if curves else np.zeros(0, np.float32)


def _cleaned_blocks(
    mixture: AudioSpool,
    vocals: AudioSpool,
    activity: VocalActivity,
    clean_up: GateSettings | None,
    sketch: SongSketch | None,
) -> Iterator[dict[str, np.ndarray]]:
    """Pass 2: the stems block by block at 44.1 kHz stereo, cleaned up between phrases when asked.

    What the clean-up takes from the vocals goes to the accompaniment: the stems still sum to the mixture.
    """
    start = 0
    for mixed, voice in zip(mixture.blocks(), vocals.blocks(), strict=True):
        stop = start + mixed.shape[1]
        if clean_up is not None:
            voice = voice * gate_gain_block(activity.segments, start, stop - start, SAMPLE_RATE, clean_up)
        if sketch is not None:
            sketch.add(mixed, voice)
        yield {VOCALS: voice, ACCOMPANIMENT: mixed - voice}
        start = stop


@dataclass(frozen=True)
class _Layout:
    channels: int
    sample_rate: int
    note: str | None  # why the rate differs from the upload's, if it does


def _output_layout(info: AudioInfo, output: OutputSettings) -> _Layout:
    """Channels and rate of the files written."""
    if output.keep_44k:
        return _Layout(AUDIO_CHANNELS, SAMPLE_RATE, None)
    rate, note = output_sample_rate(output.fmt, info.original_sample_rate)
    return _Layout(1 if info.original_channels == 1 else AUDIO_CHANNELS, rate, note)


def _converter(info: AudioInfo, output: OutputSettings, sample_rate: int) -> LayoutConverter:
    """From the model's layout to the output's; the upload's exact length at its own rate."""
    if output.keep_44k:
        return LayoutConverter(AUDIO_CHANNELS, SAMPLE_RATE, info.num_samples)
    if sample_rate == info.original_sample_rate:
        length = info.original_num_samples
    else:
        length = resampled_length(info.original_num_samples, info.original_sample_rate, sample_rate)
    return LayoutConverter(info.original_channels, sample_rate, length)
