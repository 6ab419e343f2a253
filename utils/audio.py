"""Audio in and out: decode what users upload, convert it for the model, write the stems back.

Decoding tries libsndfile (``soundfile``: WAV, FLAC, MP3, OGG Vorbis/Opus, AIFF, ...) first because its
headers give the exact length before anything is decoded, and falls back to FFmpeg (``PyAV``: M4A/AAC,
WebM/Opus, the sound track of MP4/MKV/MOV videos). Both decode at about the same speed (5 min of 44.1 kHz
stereo, soundfile vs PyAV: WAV 0.06 vs 0.07 s, FLAC 0.26 vs 0.33 s, MP3 0.32 vs 0.36 s), so the exact
length and simpler reads decide. Either route hands over blocks of ``(frames, channels)`` float32 samples
that are repaired (NaN/inf -> 0), mixed to stereo and resampled to 44.1 kHz one block at a time, then
gathered in 32 MiB chunks: a decode peaks at one copy of the result plus about one chunk (10 min of stereo:
a 202 MiB result, 245-250 MiB peak).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import soundfile as sf
import soxr

from model.stft import AUDIO_CHANNELS, SAMPLE_RATE
from utils.errors import AudioDecodeError, AudioTooLongError, AudioTooShortError, EmptyAudioError

logger = logging.getLogger(__name__)

# Shorter than this is almost surely a mistake (a click, a cut-off upload) and too little music to separate.
MIN_DURATION_S = 0.5
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aiff", ".aif", ".wma"}
)
"""File names a folder scan or the examples list picks up: audio `load_audio` decodes (videos it decodes too,
but only when named one by one)."""
# libsoxr "HQ" (20-bit precision): one 48 -> 44.1 kHz pass of a sine is -134 dB off the ideal one, below
# the noise floor of 24-bit sources; "VHQ" (28-bit, -150 dB) takes 1.3-1.7x as long for nothing audible.
RESAMPLE_QUALITY = "HQ"
# Frames read from a file per step: about 1.5 s at 44.1 kHz, small next to a song, big enough to be fast.
DECODE_BLOCK_FRAMES = 1 << 16
# Decoded audio is gathered in chunks this long: 2**22 stereo float32 frames is 32 MiB, the size from which
# glibc always maps memory straight from the OS, so a chunk freed is memory given back (not heap kept).
GATHER_CHUNK_FRAMES = 1 << 22
# A decode this much shorter than the container announced means the file is damaged or cut short.
TRUNCATION_WARNING_S = 1.0
# ITU-R BS.775 stereo downmix: centre and surround channels enter each side at -3 dB; LFE is dropped.
SURROUND_GAIN = 1 / math.sqrt(2)
# (left, right) gain of each channel, by FFmpeg / WAVEFORMATEXTENSIBLE channel name. A single back-centre
# surround is split to both sides (-3 dB for the split, -3 dB as a surround). Unknown names: centre-like.
DOWNMIX_GAINS: dict[str, tuple[float, float]] = {
    "FL": (1.0, 0.0),
    "FR": (0.0, 1.0),
    "FC": (SURROUND_GAIN, SURROUND_GAIN),
    "LFE": (0.0, 0.0),
    "BL": (SURROUND_GAIN, 0.0),
    "BR": (0.0, SURROUND_GAIN),
    "SL": (SURROUND_GAIN, 0.0),
    "SR": (0.0, SURROUND_GAIN),
    "BC": (SURROUND_GAIN**2, SURROUND_GAIN**2),
}
# Channel order assumed for files that carry no layout (libsndfile does not report WAV channel masks): the
# usual WAVE_FORMAT_EXTENSIBLE orders for 3.0, quad, 5.0, 5.1, 6.1 and 7.1. Other counts keep their first
# two channels as left/right and mix the rest in like a centre.
DEFAULT_LAYOUTS: dict[int, tuple[str, ...]] = {
    3: ("FL", "FR", "FC"),
    4: ("FL", "FR", "BL", "BR"),
    5: ("FL", "FR", "FC", "BL", "BR"),
    6: ("FL", "FR", "FC", "LFE", "BL", "BR"),
    7: ("FL", "FR", "FC", "LFE", "BC", "SL", "SR"),
    8: ("FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR"),
}

# What write_audio can produce: format -> bit depths (32 is float; MP3 has none).
OUTPUT_FORMATS: dict[str, tuple[int, ...]] = {"wav": (16, 24, 32), "flac": (16, 24), "mp3": ()}
DEFAULT_BIT_DEPTHS: dict[str, int | None] = {"wav": 24, "flac": 24, "mp3": None}
_SUBTYPES: dict[tuple[str, int | None], str] = {
    ("wav", 16): "PCM_16",
    ("wav", 24): "PCM_24",
    ("wav", 32): "FLOAT",
    ("flac", 16): "PCM_16",
    ("flac", 24): "PCM_24",
    ("mp3", None): "MPEG_LAYER_III",
}
# Integer PCM clips at 32767/32768 of full scale (libsndfile clips silently): keep peaks a hair below.
PCM_PEAK_CEILING = 0.999
# Lossy encoders overshoot the input peak by up to ~1 dB; -1 dBFS is the usual ceiling for lossy delivery
# (EBU R128 s1, AES TD1004).
MP3_PEAK_CEILING = 10 ** (-1 / 20)
# libsndfile maps compression level 0.0 in CONSTANT mode to LAME's top rate, 320 kbps CBR: stems are working
# material for a DAW, so best quality and the most compatible MP3 flavour.
MP3_COMPRESSION_LEVEL = 0.0
MP3_BITRATE_MODE = "CONSTANT"
# MPEG-1/2/2.5 Layer III only knows these rates (libsndfile refuses the others).
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# Formats already compressed (or not worth deflating): stored as they are in a zip.
STORED_IN_ZIP = frozenset({".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aiff", ".aif", ".png", ".jpg"})

_READABLE_HINT = "Try WAV, FLAC, MP3, OGG or M4A."
_DECODE_ERRORS = (sf.SoundFileError, av.FFmpegError)


@dataclass(frozen=True)
class AudioInfo:
    """What decoding an upload found, and what was done to bring it to the model's format."""

    original_sample_rate: int
    original_channels: int
    original_num_samples: int  # samples per channel decoded at the original rate
    num_samples: int  # samples per channel at SAMPLE_RATE
    duration_s: float
    source_format: str  # e.g. "FLAC (Signed 16 bit PCM)", "M4A (aac)"
    repaired_samples: int  # NaN/inf samples replaced by 0
    warnings: tuple[str, ...]  # sentences for the user: resampled, downmixed, repaired, damaged...


@dataclass(frozen=True)
class DecodedAudio:
    """An upload in the model's format, with what was done to get there."""

    waveform: np.ndarray  # float32 (2, samples) at SAMPLE_RATE, C-contiguous
    original_sample_rate: int
    original_channels: int
    original_num_samples: int  # samples per channel decoded at the original rate
    duration_s: float
    source_format: str  # e.g. "FLAC (Signed 16 bit PCM)", "M4A (aac)"
    repaired_samples: int  # NaN/inf samples replaced by 0
    warnings: tuple[str, ...]  # sentences for the user: resampled, downmixed, repaired, damaged...


@dataclass(frozen=True)
class WriteReport:
    """What write_audio put on disk."""

    path: Path
    fmt: str
    bit_depth: int | None  # None for MP3
    sample_rate: int  # the written rate (MP3 may differ from the one asked for)
    channels: int
    num_samples: int
    peak_dbfs: float  # peak of the waveform given, before any gain; -inf for silence
    gain_db: float  # gain applied so the format cannot clip; 0.0 when none
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class _Source:
    """An opened file: what its header says, and its samples as float32 (frames, channels) blocks."""

    sample_rate: int
    channel_names: tuple[str, ...]  # empty strings where the file does not say
    duration_s: float | None  # exact (soundfile) or estimated (FFmpeg) by the container; None if unknown
    format_name: str
    blocks: Iterator[np.ndarray]


def resampled_length(num_samples: int, from_rate: int, to_rate: int) -> int:
    """Length after resampling: num_samples * to_rate / from_rate rounded half up, as libsoxr does."""
    return (num_samples * to_rate + from_rate // 2) // from_rate


def load_audio(
    path: str | os.PathLike[str],
    *,
    max_duration_s: float | None = None,
    min_duration_s: float = MIN_DURATION_S,
) -> DecodedAudio:
    """Decode any supported file into float32 (2, samples) at 44.1 kHz.

    Raises AudioDecodeError (not audio, missing), EmptyAudioError (no samples), AudioTooShortError and
    AudioTooLongError (checked on the header before decoding when the container tells the length).
    """
    gathered = _Gatherer()
    with open_audio(path, max_duration_s=max_duration_s, min_duration_s=min_duration_s) as stream:
        for block in stream.blocks():
            gathered.append(block.T)
        info = stream.info()
    return DecodedAudio(
        waveform=gathered.join(info.num_samples),
        original_sample_rate=info.original_sample_rate,
        original_channels=info.original_channels,
        original_num_samples=info.original_num_samples,
        duration_s=info.duration_s,
        source_format=info.source_format,
        repaired_samples=info.repaired_samples,
        warnings=info.warnings,
    )


class AudioStream:
    """An opened upload, decoded block by block into float32 `(2, n)` at SAMPLE_RATE (see `open_audio`)."""

    def __init__(self, source: _Source, path: Path, max_duration_s: float | None, min_duration_s: float) -> None:
        self._source = source
        self._path = path
        self._max_duration_s = max_duration_s
        self._min_duration_s = min_duration_s
        self._info: AudioInfo | None = None

    @property
    def announced_duration_s(self) -> float | None:
        """The length the container announces (exact for libsndfile, an estimate for FFmpeg), if any."""
        return self._source.duration_s

    def blocks(self) -> Iterator[np.ndarray]:
        """The whole song once, as C-contiguous float32 `(2, n)` blocks: exactly `info().num_samples` in all."""
        source, path = self._source, self._path
        mix = _downmix_matrix(source.channel_names).T  # (channels, 2)
        resampler = (
            soxr.ResampleStream(source.sample_rate, SAMPLE_RATE, AUDIO_CHANNELS, "float32", RESAMPLE_QUALITY)
            if source.sample_rate != SAMPLE_RATE
            else None
        )
        max_frames = math.inf if self._max_duration_s is None else self._max_duration_s * source.sample_rate
        num_frames = repaired = emitted = 0
        damaged = False
        held: np.ndarray | None = None  # one block of look-ahead: the last one is trimmed to the exact length
        try:
            for block in source.blocks:
                num_frames += block.shape[0]
                if num_frames > max_frames:
                    raise AudioTooLongError(
                        f"'{path.name}' is longer than the {_format_duration(self._max_duration_s or 0.0)} this "
                        "app accepts. Please trim it (or split a long set) and try again."
                    )
                repaired += _repair_non_finite(block)
                stereo = block @ mix
                converted = resampler.resample_chunk(stereo) if resampler else stereo
                if converted.shape[0]:
                    if held is not None:
                        emitted += held.shape[0]
                        yield np.ascontiguousarray(held.T)
                    held = converted
        except _DECODE_ERRORS as error:
            if not num_frames:
                logger.debug("cannot decode %s: %s", path.name, error)
                raise AudioDecodeError(_undecodable_message(path)) from None
            logger.warning("%s: decoding stopped after %d frames: %s", path.name, num_frames, error)
            damaged = True
        tail = [held] if held is not None else []
        if resampler:
            tail.append(resampler.resample_chunk(np.zeros((0, AUDIO_CHANNELS), np.float32), last=True))
        self._info = self._describe(num_frames, repaired, damaged)
        remaining = self._info.num_samples - emitted
        last = np.concatenate(tail)[:remaining] if tail else np.zeros((0, AUDIO_CHANNELS), np.float32)
        if last.shape[0] < remaining:
            last = np.concatenate([last, np.zeros((remaining - last.shape[0], AUDIO_CHANNELS), np.float32)])
        if remaining > 0:
            yield np.ascontiguousarray(last.T)

    def info(self) -> AudioInfo:
        """What decoding found; only once `blocks()` has run to the end."""
        if self._info is None:
            raise RuntimeError("info() is known once blocks() has been read to the end")
        return self._info

    def _describe(self, num_frames: int, repaired: int, damaged: bool) -> AudioInfo:
        source, path = self._source, self._path
        if num_frames == 0:
            raise EmptyAudioError(f"'{path.name}' contains no audio samples.")
        duration_s = num_frames / source.sample_rate
        if duration_s < self._min_duration_s:
            raise AudioTooShortError(
                f"'{path.name}' holds only {duration_s:.2f} s of audio ({num_frames} samples); we need at least "
                f"{self._min_duration_s:g} s to separate."
            )
        warnings = _decode_warnings(source, num_frames, repaired, damaged)
        for warning in warnings:
            logger.info("%s: %s", path.name, warning)
        return AudioInfo(
            original_sample_rate=source.sample_rate,
            original_channels=len(source.channel_names),
            original_num_samples=num_frames,
            num_samples=resampled_length(num_frames, source.sample_rate, SAMPLE_RATE),
            duration_s=duration_s,
            source_format=source.format_name,
            repaired_samples=repaired,
            warnings=warnings,
        )


@contextmanager
def open_audio(
    path: str | os.PathLike[str],
    *,
    max_duration_s: float | None = None,
    min_duration_s: float = MIN_DURATION_S,
) -> Iterator[AudioStream]:
    """Open an upload for decoding block by block; the same checks and errors as `load_audio`.

    The length limit is checked on the header here, before anything is decoded, and again while decoding;
    emptiness and the minimum length once the blocks have been read (`AudioStream.info()`).
    """
    path = Path(path)
    _check_file(path)
    with _open_source(path) as source:
        _check_announced_length(source, path, max_duration_s)
        yield AudioStream(source, path, max_duration_s, min_duration_s)


def announced_duration_s(path: str | os.PathLike[str]) -> float | None:
    """The length a file's header announces, without decoding it; None when unknown or unreadable."""
    try:
        _check_file(Path(path))
        with _open_source(Path(path)) as source:
            return source.duration_s
    except (AudioDecodeError, EmptyAudioError, OSError):
        return None


def to_original_layout(
    waveform: np.ndarray,
    original_sample_rate: int,
    original_channels: int,
    *,
    num_samples: int | None = None,
) -> np.ndarray:
    """Bring a model-rate stereo stem (2, samples) back to the upload's rate and channel count.

    Mono uploads get the average of left and right; uploads with more than two channels stay stereo (the
    downmix cannot be undone). ``num_samples`` pins the length, e.g. to ``DecodedAudio.original_num_samples``
    so stems line up sample for sample with the upload. Returns float32 (channels, samples).
    """
    if waveform.ndim != 2 or waveform.shape[0] != AUDIO_CHANNELS:
        raise ValueError(f"expected a stereo waveform (2, samples), got shape {waveform.shape}")
    if num_samples is None:
        num_samples = resampled_length(waveform.shape[1], SAMPLE_RATE, original_sample_rate)
    converter = LayoutConverter(original_channels, original_sample_rate, num_samples)
    return np.concatenate([converter.convert(waveform), converter.finish()], axis=1)


class LayoutConverter:
    """Model-rate stereo blocks `(2, n)` → the upload's layout, block by block: its channel count (mono gets
    the mean of left and right; more than two channels stay stereo, a downmix cannot be undone), a sample rate
    and an exact total length (trimmed or zero-padded at the end)."""

    def __init__(self, channels: int, sample_rate: int, num_samples: int) -> None:
        self.channels = 1 if channels == 1 else AUDIO_CHANNELS
        self.sample_rate = sample_rate
        self.num_samples = num_samples
        self._emitted = 0
        self._resampler = (
            soxr.ResampleStream(SAMPLE_RATE, sample_rate, self.channels, "float32", RESAMPLE_QUALITY)
            if sample_rate != SAMPLE_RATE
            else None
        )
        if channels > AUDIO_CHANNELS:
            logger.info("Stems stay stereo: the %d-channel upload was mixed down.", channels)

    def convert(self, block: np.ndarray) -> np.ndarray:
        """The next `(channels, m)` samples of the output for the next model-rate `block` `(2, n)`."""
        channels = block.mean(axis=0, keepdims=True) if self.channels == 1 else block
        if self._resampler is not None:
            channels = self._resampler.resample_chunk(np.ascontiguousarray(channels.T)).T
        return self._pinned(channels)

    def finish(self) -> np.ndarray:
        """The rest of the output: what the resampler still holds, then zeros up to `num_samples`."""
        rest = np.zeros((self.channels, 0), np.float32)
        if self._resampler is not None:
            rest = self._resampler.resample_chunk(np.zeros((0, self.channels), np.float32), last=True).T
        rest = self._pinned(rest)
        missing = self.num_samples - self._emitted
        padding = np.zeros((self.channels, max(0, missing)), np.float32)
        self._emitted += padding.shape[1]
        return np.concatenate([rest, padding], axis=1)

    def _pinned(self, samples: np.ndarray) -> np.ndarray:
        kept = samples[:, : max(0, self.num_samples - self._emitted)].astype(np.float32, copy=False)
        self._emitted += kept.shape[1]
        return kept


def output_extension(fmt: str) -> str:
    """File extension for an output format, e.g. ``"flac"`` -> ``".flac"``."""
    _check_format(fmt, DEFAULT_BIT_DEPTHS.get(fmt.lower()))
    return f".{fmt.lower()}"


def write_audio(
    path: str | os.PathLike[str],
    waveform: np.ndarray,
    sample_rate: int,
    fmt: str = "wav",
    bit_depth: int | None = None,
    *,
    overwrite: bool = False,
) -> WriteReport:
    """Write a (channels, samples) waveform atomically, never clipping silently.

    32-bit float WAV keeps every value. Integer PCM and MP3 are scaled down when the peak exceeds what they
    hold (PCM_PEAK_CEILING, MP3_PEAK_CEILING) and the gain is reported. MP3 at a rate it cannot carry is
    resampled to the nearest rate it can (reported). Raises FileExistsError unless ``overwrite``.
    """
    path, fmt, bit_depth = _checked_target(path, fmt, bit_depth, overwrite)
    peak = _checked_peak(waveform, fmt)
    warnings: list[str] = []
    if fmt == "mp3" and sample_rate not in MP3_SAMPLE_RATES:
        target, note = output_sample_rate(fmt, sample_rate)
        waveform = np.stack([soxr.resample(channel, sample_rate, target, RESAMPLE_QUALITY) for channel in waveform])
        sample_rate = target
        warnings.append(note)
        peak = _checked_peak(waveform, fmt)

    def blocks() -> Iterator[np.ndarray]:
        for start in range(0, waveform.shape[1], DECODE_BLOCK_FRAMES):
            yield waveform[:, start : start + DECODE_BLOCK_FRAMES]

    return _encode(path, blocks, waveform.shape, peak, sample_rate, fmt, bit_depth, overwrite, warnings)


def write_spool(
    path: str | os.PathLike[str],
    spool: AudioSpool,
    sample_rate: int,
    fmt: str = "wav",
    bit_depth: int | None = None,
    *,
    overwrite: bool = False,
) -> WriteReport:
    """`write_audio` for a signal kept on disk: the same gain rule from the spool's peak, block by block.

    For MP3 the rate must be one it carries (bring it there first, see `output_sample_rate`).
    """
    path, fmt, bit_depth = _checked_target(path, fmt, bit_depth, overwrite)
    if not math.isfinite(spool.peak):
        raise ValueError("waveform holds NaN or infinite samples")
    if fmt == "mp3" and (sample_rate not in MP3_SAMPLE_RATES or spool.channels > AUDIO_CHANNELS):
        raise ValueError(f"MP3 carries 1-2 channels at {MP3_SAMPLE_RATES} Hz, got {spool.channels} at {sample_rate}")
    shape = (spool.channels, spool.num_samples)
    return _encode(path, spool.blocks, shape, spool.peak, sample_rate, fmt, bit_depth, overwrite, [])


def output_sample_rate(fmt: str, sample_rate: int) -> tuple[int, str | None]:
    """The rate a file of `fmt` is written at for audio at `sample_rate`, and a note when it differs.

    Only MP3 limits the rate: to the nearest rate at or above `sample_rate` that it carries (48 kHz at most).
    """
    if fmt.lower() != "mp3" or sample_rate in MP3_SAMPLE_RATES:
        return sample_rate, None
    target = min((rate for rate in MP3_SAMPLE_RATES if rate >= sample_rate), default=MP3_SAMPLE_RATES[-1])
    return target, f"MP3 cannot carry {sample_rate / 1000:g} kHz, so the MP3 is at {target / 1000:g} kHz."


class AudioSpool:
    """A long float32 signal `(channels, samples)` kept in a raw file while it is made, with its peak.

    Written and read back in blocks, so a song of any length costs a block of memory, not the song.
    """

    def __init__(self, path: Path, channels: int) -> None:
        self.path = Path(path)
        self.channels = channels
        self.num_samples = 0
        self.peak = 0.0
        self._handle: BinaryIO | None = self.path.open("wb")

    def write(self, block: np.ndarray) -> None:
        """Append `(channels, n)` samples."""
        if self._handle is None:
            raise ValueError(f"{self.path.name} is closed for writing")
        if block.shape[1]:
            self.peak = max(self.peak, float(block.max()), -float(block.min()))
            self._handle.write(np.ascontiguousarray(block.T, dtype=np.float32).tobytes())
            self.num_samples += block.shape[1]

    def close(self) -> None:
        """Finish writing (reading back closes it too)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def blocks(self, size: int = DECODE_BLOCK_FRAMES) -> Iterator[np.ndarray]:
        """The samples from the start, as float32 `(channels, ≤ size)` blocks."""
        self.close()
        with self.path.open("rb") as handle:
            while (data := np.fromfile(handle, dtype=np.float32, count=size * self.channels)).size:
                yield data.reshape(-1, self.channels).T


def make_zip(zip_path: str | os.PathLike[str], files: Mapping[str, Path], *, overwrite: bool = False) -> Path:
    """Zip ``{name in archive: file}`` atomically; audio is stored as is, text (json, txt) deflated."""
    zip_path = Path(zip_path)
    for name in files:
        parts = Path(name).parts
        if not parts or Path(name).is_absolute() or ".." in parts:
            raise ValueError(f"archive names must be relative paths inside the zip, got {name!r}")
    if not overwrite and zip_path.exists():
        raise FileExistsError(f"{zip_path} already exists; pass overwrite=True to replace it")
    with _atomic_output(zip_path, overwrite) as handle, zipfile.ZipFile(handle, "w") as archive:
        for name, source in files.items():
            stored = Path(source).suffix.lower() in STORED_IN_ZIP
            archive.write(source, name, compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
    return zip_path


# --- decoding -------------------------------------------------------------------------------------------


def _check_file(path: Path) -> None:
    """Refuse what is not a readable, non-empty file before any decoder sees it."""
    if not path.is_file():
        raise AudioDecodeError(f"We couldn't find the file '{path.name}'. Please upload it again.")
    if path.stat().st_size == 0:
        raise EmptyAudioError(
            f"'{path.name}' is empty (0 bytes); the upload may have failed. Please try again."
        )


@contextmanager
def _open_source(path: Path) -> Iterator[_Source]:
    """Open with libsndfile, else with FFmpeg; AudioDecodeError when neither reads it."""
    try:
        sound_file = sf.SoundFile(path)
    except sf.SoundFileError as error:
        logger.debug("libsndfile cannot open %s (%s); trying FFmpeg", path.name, error)
    else:
        with sound_file:
            yield _soundfile_source(sound_file)
        return
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as error:
        logger.debug("FFmpeg cannot open %s (%s)", path.name, error)
        raise AudioDecodeError(_undecodable_message(path)) from None
    with container:
        yield _pyav_source(container, path)


def _soundfile_source(sound_file: sf.SoundFile) -> _Source:
    """Describe a libsndfile file; its header gives the exact frame count."""

    def blocks() -> Iterator[np.ndarray]:
        while len(block := sound_file.read(DECODE_BLOCK_FRAMES, dtype="float32", always_2d=True)):
            yield block

    return _Source(
        sample_rate=sound_file.samplerate,
        channel_names=("",) * sound_file.channels,
        duration_s=sound_file.frames / sound_file.samplerate,
        format_name=f"{sound_file.format} ({sound_file.subtype_info})",
        blocks=blocks(),
    )


def _pyav_source(container: av.container.InputContainer, path: Path) -> _Source:
    """Describe the first audio stream of an FFmpeg container; its length is an estimate, if known.

    Rate and layout come from the first decoded frame, not the header: HE-AAC headers announce half the
    rate and, with parametric stereo, one channel.
    """
    if not container.streams.audio:
        raise AudioDecodeError(f"'{path.name}' has no sound track we can read. {_READABLE_HINT}")
    stream = container.streams.audio[0]
    frames = container.decode(stream)
    try:
        first = next(frames, None)
    except av.FFmpegError as error:
        logger.debug("FFmpeg cannot decode %s (%s)", path.name, error)
        raise AudioDecodeError(_undecodable_message(path)) from None
    if first is None:
        raise EmptyAudioError(f"'{path.name}' contains no audio samples.")
    layout, rate = first.layout, first.sample_rate
    if stream.duration is not None and stream.time_base is not None:
        duration_s: float | None = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration_s = container.duration / av.time_base
    else:
        duration_s = None

    def blocks() -> Iterator[np.ndarray]:
        # Packed float ("flt") gives one plane per frame: PyAV's per-plane access misreads 8+ planes.
        converter = av.AudioResampler(format="flt", layout=layout, rate=rate, frame_size=DECODE_BLOCK_FRAMES)
        for frame in itertools.chain([first], frames, [None]):
            for converted in converter.resample(frame):
                yield converted.to_ndarray().reshape(-1, layout.nb_channels)

    kind = path.suffix.lstrip(".").upper() or container.format.name.split(",")[0].upper()
    return _Source(
        sample_rate=rate,
        channel_names=tuple("" if channel.name == "NONE" else channel.name for channel in layout.channels),
        duration_s=duration_s,
        format_name=f"{kind} ({stream.codec_context.name})",
        blocks=blocks(),
    )


def _check_announced_length(source: _Source, path: Path, max_duration_s: float | None) -> None:
    """Refuse a file whose header says it is too long, before decoding it."""
    if max_duration_s is not None and source.duration_s is not None and source.duration_s > max_duration_s:
        raise AudioTooLongError(
            f"'{path.name}' is {_format_duration(source.duration_s)} long; this app accepts up to "
            f"{_format_duration(max_duration_s)}. Please trim it (or split a long set) and try again."
        )


def _repair_non_finite(block: np.ndarray) -> int:
    """Set NaN and infinite samples of ``block`` to 0 in place; return how many there were."""
    bad = ~np.isfinite(block)
    count = int(np.count_nonzero(bad))
    if count:
        block[bad] = 0.0
    return count


def _downmix_matrix(channel_names: Sequence[str]) -> np.ndarray:
    """(2, channels) gains to stereo: mono duplicated, stereo kept, surround mixed per ITU-R BS.775.

    The surround gains are then scaled so that no output row sums above 1: a full-scale input on every
    channel at once cannot clip (5.1: -7.7 dB, 7.1: -9.9 dB).
    """
    count = len(channel_names)
    if count == 1:
        return np.ones((AUDIO_CHANNELS, 1), dtype=np.float32)
    if count == 2:
        return np.eye(AUDIO_CHANNELS, dtype=np.float32)
    names = (
        tuple(channel_names)
        if all(channel_names)
        else DEFAULT_LAYOUTS.get(count, ("FL", "FR") + ("",) * (count - 2))
    )
    centre = DOWNMIX_GAINS["FC"]
    matrix = np.array([DOWNMIX_GAINS.get(name, centre) for name in names], dtype=np.float64).T
    return (matrix / matrix.sum(axis=1).max()).astype(np.float32)


class _Gatherer:
    """Stereo audio of unknown length, gathered block by block into (2, GATHER_CHUNK_FRAMES) chunks."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._filled = GATHER_CHUNK_FRAMES  # frames used in the last chunk; full means "start a new one"

    def append(self, block: np.ndarray) -> None:
        """Add (frames, 2) samples at the end."""
        done = 0
        while done < block.shape[0]:
            if self._filled == GATHER_CHUNK_FRAMES:
                self._chunks.append(np.empty((AUDIO_CHANNELS, GATHER_CHUNK_FRAMES), dtype=np.float32))
                self._filled = 0
            take = min(GATHER_CHUNK_FRAMES - self._filled, block.shape[0] - done)
            self._chunks[-1][:, self._filled : self._filled + take] = block[done : done + take].T
            self._filled += take
            done += take

    def join(self, num_samples: int) -> np.ndarray:
        """Everything as one C-contiguous (2, num_samples) array, trimmed or zero-padded at the end.

        Chunks are released as they are copied, so the peak stays one chunk above the result (whose zero
        pages cost nothing until written).
        """
        waveform = np.zeros((AUDIO_CHANNELS, num_samples), dtype=np.float32)
        start = 0
        while self._chunks and start < num_samples:
            chunk = self._chunks.pop(0)
            used = self._filled if not self._chunks else GATHER_CHUNK_FRAMES
            stop = min(start + used, num_samples)
            waveform[:, start:stop] = chunk[:, : stop - start]
            start = stop
            del chunk
        self._chunks.clear()
        return waveform


def _decode_warnings(source: _Source, num_frames: int, repaired: int, damaged: bool) -> tuple[str, ...]:
    """Sentences telling the user what the conversion changed."""
    warnings = []
    channels = len(source.channel_names)
    if source.sample_rate != SAMPLE_RATE:
        warnings.append(
            f"Converted the sample rate from {source.sample_rate / 1000:g} kHz to "
            f"{SAMPLE_RATE / 1000:g} kHz for the model."
        )
    if channels == 1:
        warnings.append("The file is mono: the same signal feeds both stereo channels.")
    elif channels > AUDIO_CHANNELS:
        gain = float(_downmix_matrix(source.channel_names).max())
        warnings.append(
            f"Mixed the {channels} channels down to stereo ({-_to_db(gain):.1f} dB quieter so it cannot "
            "clip); the stems will be stereo."
        )
    if repaired:
        warnings.append(
            f"Replaced {repaired} damaged samples (not-a-number or infinite values) with silence."
        )
    decoded_s = num_frames / source.sample_rate
    if damaged or (source.duration_s is not None and source.duration_s - decoded_s > TRUNCATION_WARNING_S):
        warnings.append(
            "The file seems damaged or cut short: we used the first "
            f"{_format_duration(decoded_s)} we could read."
        )
    return tuple(warnings)


def _undecodable_message(path: Path) -> str:
    return (
        f"'{path.name}' doesn't look like audio we can read (it may be damaged or in an unsupported format). "
        f"{_READABLE_HINT}"
    )


# --- writing --------------------------------------------------------------------------------------------


def _check_format(fmt: str, bit_depth: int | None) -> None:
    """Raise ValueError for a format or bit depth write_audio does not offer."""
    if fmt.lower() not in OUTPUT_FORMATS:
        raise ValueError(f"unsupported output format {fmt!r}; choose one of {sorted(OUTPUT_FORMATS)}")
    if (fmt.lower(), bit_depth) not in _SUBTYPES:
        raise ValueError(
            f"{fmt} cannot be written at bit depth {bit_depth}; it offers {OUTPUT_FORMATS[fmt.lower()]}"
        )


def _checked_peak(waveform: np.ndarray, fmt: str) -> float:
    """Peak magnitude of a float (channels, samples) waveform; ValueError if the format cannot take it."""
    if waveform.ndim != 2 or not np.issubdtype(waveform.dtype, np.floating):
        raise ValueError(
            f"expected a float (channels, samples) waveform, got {waveform.dtype} {waveform.shape}"
        )
    if fmt == "mp3" and waveform.shape[0] > AUDIO_CHANNELS:
        raise ValueError(f"MP3 holds one or two channels, got {waveform.shape[0]}")
    peak = max(float(waveform.max()), -float(waveform.min())) if waveform.size else 0.0
    if not math.isfinite(peak):  # max/min carry NaN and inf through, without a copy of the waveform
        raise ValueError("waveform holds NaN or infinite samples")
    return peak


def _peak_ceiling(fmt: str, bit_depth: int | None) -> float | None:
    """Highest peak the format holds without clipping; None when it holds anything (float)."""
    if fmt == "mp3":
        return MP3_PEAK_CEILING
    return None if bit_depth == 32 else PCM_PEAK_CEILING


def _checked_target(
    path: str | os.PathLike[str], fmt: str, bit_depth: int | None, overwrite: bool
) -> tuple[Path, str, int | None]:
    """The target path, the lower-case format and the bit depth with its default; raises for bad ones."""
    path = Path(path)
    fmt = fmt.lower()
    bit_depth = DEFAULT_BIT_DEPTHS.get(fmt) if bit_depth is None else bit_depth
    _check_format(fmt, bit_depth)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    return path, fmt, bit_depth


def _encode(
    path: Path,
    blocks: Callable[[], Iterator[np.ndarray]],
    shape: tuple[int, int],
    peak: float,
    sample_rate: int,
    fmt: str,
    bit_depth: int | None,
    overwrite: bool,
    warnings: list[str],
) -> WriteReport:
    """Encode `(channels, n)` blocks into `path` atomically, lowering the level when the format would clip."""
    ceiling = _peak_ceiling(fmt, bit_depth)
    gain = ceiling / peak if ceiling is not None and peak > ceiling else 1.0
    if gain != 1.0:
        warnings.append(
            f"Lowered the level by {-_to_db(gain):.2f} dB so the {_describe(fmt, bit_depth)} file "
            "does not clip."
        )
    elif peak > 1.0:
        warnings.append(
            f"The audio peaks {_to_db(peak):.1f} dB above full scale; the 32-bit float file keeps it, "
            "but lower the level before converting it to a fixed-point format."
        )
    options = (
        {"compression_level": MP3_COMPRESSION_LEVEL, "bitrate_mode": MP3_BITRATE_MODE} if fmt == "mp3" else {}
    )
    with _atomic_output(path, overwrite) as handle, sf.SoundFile(
        handle,
        "w",
        samplerate=sample_rate,
        channels=shape[0],
        format=fmt.upper(),
        subtype=_SUBTYPES[(fmt, bit_depth)],
        **options,
    ) as sound_file:
        for block in blocks():
            sound_file.write(block.T * np.float32(gain) if gain != 1.0 else block.T)
    for warning in warnings:
        logger.info("%s: %s", path.name, warning)
    return WriteReport(
        path=path,
        fmt=fmt,
        bit_depth=bit_depth,
        sample_rate=sample_rate,
        channels=shape[0],
        num_samples=shape[1],
        peak_dbfs=_to_db(peak),
        gain_db=_to_db(gain),
        warnings=tuple(warnings),
    )


@contextmanager
def _atomic_output(path: Path, overwrite: bool) -> Iterator[BinaryIO]:
    """A temporary file beside ``path`` that becomes ``path`` only once fully written.

    Without ``overwrite`` the final step is a hard link, which fails rather than replace a file that
    appeared meanwhile. On any error the temporary file is removed and ``path`` is untouched.
    """
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(descriptor, "w+b") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        if overwrite:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
            os.unlink(temporary)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


# --- small helpers --------------------------------------------------------------------------------------


def _to_db(gain: float) -> float:
    return 20 * math.log10(gain) if gain > 0 else -math.inf


def _describe(fmt: str, bit_depth: int | None) -> str:
    return f"{bit_depth}-bit {fmt.upper()}" if bit_depth else fmt.upper()


def _format_duration(seconds: float) -> str:
    """3:07, or 1:02:03 from an hour on."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
