"""Videos in, videos out: give an uploaded video a new sound track without touching its picture.

A separated stem replaces the sound of the upload: the accompaniment makes a karaoke video, the vocals a
vocals-only one. The picture is re-muxed, not re-encoded: every packet of the first video stream is copied
as it is, with its timestamps, so the picture is bit for bit the upload's and re-muxing costs about as much
as copying the file. Only the new sound is encoded, in what the container plays best: AAC in MP4/MOV,
Opus in WebM and Matroska. Uploads in other containers (AVI, MPEG-TS, FLV…) come back as Matroska with Opus.

    if is_video(upload):
        remux_with_audio(upload, accompaniment, 44100, folder / "song_karaoke.mp4")
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from utils.errors import AudioDecodeError, NoSoundTrackError

logger = logging.getLogger(__name__)

# Output container (by the upload's extension) → (extension written, audio encoder, its sample rate or
# None for the stem's own rate). Opus runs at 48 kHz only; AAC takes 44.1 and 48 kHz as they are.
AAC = ("aac", None)
OPUS = ("libopus", 48000)
CONTAINERS: dict[str, tuple[str, tuple[str, int | None]]] = {
    ".mp4": (".mp4", AAC),
    ".m4v": (".m4v", AAC),
    ".mov": (".mov", AAC),
    ".webm": (".webm", OPUS),
    ".mkv": (".mkv", OPUS),
}
FALLBACK_CONTAINER = (".mkv", OPUS)  # Matroska holds any picture codec an upload may have
# Sound bit rates: transparent for music at a size that does not matter next to the picture.
BIT_RATES = {"aac": 192_000, "libopus": 160_000}
# Samples handed to the encoder per step (about 1.5 s): the sound is encoded as the picture is copied.
ENCODE_BLOCK_FRAMES = 1 << 16
LAYOUTS = {1: "mono", 2: "stereo"}
VIDEO_ERRORS = (av.FFmpegError, OSError)


@dataclass(frozen=True)
class VideoInfo:
    """What re-muxing needs to know about an upload with a picture."""

    extension: str  # what `remux_with_audio` writes for it, e.g. ".mp4"
    video_codec: str  # e.g. "h264"
    has_sound: bool


def probe_video(path: str | os.PathLike[str]) -> VideoInfo | None:
    """The upload's picture and sound, or None when it has no moving picture (audio, cover art only)."""
    path = Path(path)
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            video = _picture_stream(container)
            if video is None:
                return None
            extension, _ = _output_choice(path)
            return VideoInfo(extension, video.codec_context.name, bool(container.streams.audio))
    except VIDEO_ERRORS as error:
        logger.debug("%s is not a video we can open: %s", path.name, error)
        return None


def is_video(path: str | os.PathLike[str]) -> bool:
    """True when the file holds a moving picture (not just an album cover)."""
    return probe_video(path) is not None


def check_sound_track(path: str | os.PathLike[str]) -> None:
    """Raise NoSoundTrackError for a video without sound, before anyone tries to decode it."""
    info = probe_video(path)
    if info is not None and not info.has_sound:
        raise NoSoundTrackError(
            f"'{Path(path).name}' is a video without a sound track, so there is no voice or music to separate. "
            "Upload the video with its sound, or the song itself."
        )


def output_path(video_path: str | os.PathLike[str], folder: Path, stem: str) -> Path:
    """Where `remux_with_audio` should write: `folder / stem` with the extension it writes for this upload."""
    extension, _ = _output_choice(Path(video_path))
    return folder / f"{stem}{extension}"


def remux_with_audio(
    video_path: str | os.PathLike[str],
    audio: np.ndarray,
    sample_rate: int,
    out_path: str | os.PathLike[str],
) -> Path:
    """Write the upload's picture with `audio` (float32 `(channels, samples)`, 1 or 2 channels) as its sound.

    The first video stream's packets are copied unchanged (no re-encoding); the new sound starts where the
    upload's sound started, so they stay in sync. Other streams (the old sound, subtitles) are left out.
    Raises AudioDecodeError when the upload cannot be read as a video.
    """
    video_path, out_path = Path(video_path), Path(out_path)
    if audio.ndim != 2 or audio.shape[0] not in LAYOUTS or audio.dtype != np.float32:
        raise ValueError(f"audio must be float32 (1 or 2 channels, samples), got {audio.dtype} {audio.shape}")
    extension, (codec, codec_rate) = _output_choice(video_path)
    if out_path.suffix.lower() != extension:
        raise ValueError(f"a re-mux of {video_path.name} is written as {extension}, not {out_path.suffix}")
    try:
        start_s = _sound_start_s(video_path)
        with av.open(str(video_path), metadata_errors="ignore") as source:
            picture = _picture_stream(source)
            if picture is None:
                raise AudioDecodeError(f"'{video_path.name}' has no picture to put the new sound under.")
            with av.open(str(out_path), "w") as sink:
                picture_out = sink.add_stream_from_template(picture)
                sound_out = sink.add_stream(codec, rate=codec_rate or sample_rate)
                sound_out.layout = LAYOUTS[audio.shape[0]]
                sound_out.bit_rate = BIT_RATES[codec]
                sound = _encoded(sound_out, audio, sample_rate, start_s)
                pending = next(sound, None)
                for packet in source.demux(picture):
                    if packet.dts is None:  # the demuxer's end-of-stream marker
                        continue
                    picture_time = packet.dts * packet.time_base
                    while pending is not None and pending.dts * pending.time_base <= picture_time:
                        sink.mux(pending)
                        pending = next(sound, None)
                    packet.stream = picture_out
                    sink.mux(packet)
                while pending is not None:
                    sink.mux(pending)
                    pending = next(sound, None)
    except av.FFmpegError as error:
        out_path.unlink(missing_ok=True)
        logger.warning("re-muxing %s failed: %s", video_path.name, error)
        raise AudioDecodeError(f"We couldn't rebuild the video '{video_path.name}' with the new sound.") from error
    logger.info("re-muxed %s with new sound into %s", video_path.name, out_path.name)
    return out_path


def _picture_stream(container: av.container.InputContainer) -> av.VideoStream | None:
    """The first video stream that is a moving picture, not an attached cover image."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _sound_start_s(path: Path) -> Fraction:
    """When the upload's first decoded sound sample plays: the stems' sample 0 (0 without sound).

    That is the first decoded frame's time, not the stream's start: an AAC stream starts with priming
    samples that decoders drop, and `load_audio` never saw them.
    """
    with av.open(str(path), metadata_errors="ignore") as container:
        if not container.streams.audio:
            return Fraction(0)
        first = next(container.decode(container.streams.audio[0]), None)
        if first is None or first.pts is None or first.time_base is None:
            return Fraction(0)
        return first.pts * first.time_base


def _output_choice(path: Path) -> tuple[str, tuple[str, int | None]]:
    return CONTAINERS.get(path.suffix.lower(), FALLBACK_CONTAINER)


def _encoded(
    stream: av.AudioStream, audio: np.ndarray, sample_rate: int, start_s: Fraction
) -> Iterator[av.Packet]:
    """Encode `audio` for `stream`, block by block, starting at `start_s`; yields packets in time order."""
    context = stream.codec_context
    context.open()  # only an open encoder knows its frame size (AAC 1024, Opus 960 samples)
    converter = av.AudioResampler(
        format=context.codec.audio_formats[0], layout=stream.layout, rate=stream.rate,
        frame_size=context.frame_size or None,
    )
    time_base = Fraction(1, sample_rate)
    first_pts = round(start_s * sample_rate)
    for start in range(0, audio.shape[1], ENCODE_BLOCK_FRAMES):
        block = np.ascontiguousarray(audio[:, start : start + ENCODE_BLOCK_FRAMES])
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=stream.layout)
        frame.sample_rate = sample_rate
        frame.pts = first_pts + start
        frame.time_base = time_base
        for converted in converter.resample(frame):
            yield from stream.encode(converted)
    for converted in converter.resample(None):
        yield from stream.encode(converted)
    yield from stream.encode(None)
