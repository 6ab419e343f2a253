"""Video in, video out: the picture is copied packet for packet under a new sound track."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from utils.errors import AudioDecodeError, NoSoundTrackError
from utils.video import check_sound_track, is_video, output_path, probe_video, remux_with_audio

FPS = 10
FRAMES = 12  # 1.2 s of picture
SIZE = (64, 48)
RATE = 44100
# (extension, picture codec, sound codec) of the test uploads: what phones and browsers record.
KINDS = {".mp4": ("libx264", "aac"), ".webm": ("libvpx-vp9", "libopus")}


def make_video(
    path: Path, *, with_sound: bool = True, sound_start_s: float = 0.0, frames: int = FRAMES,
    phrases: list[tuple[float, float]] | None = None,
) -> Path:
    """A tiny moving test picture (a bright bar sliding across), `frames` long at FPS, with a 440 Hz tone as
    its sound: all along, or only during `phrases` `[(start_s, end_s)]`."""
    picture_codec, sound_codec = KINDS.get(path.suffix, ("mpeg4", "mp2"))
    with av.open(str(path), "w") as container:
        picture = container.add_stream(picture_codec, rate=FPS)
        picture.width, picture.height, picture.pix_fmt = *SIZE, "yuv420p"
        if picture_codec == "libx264":
            picture.options = {"preset": "ultrafast"}
        sound = container.add_stream(sound_codec, rate=48000 if sound_codec == "libopus" else RATE) \
            if with_sound else None
        if sound is not None:
            sound.layout = "stereo"
        for index in range(frames):
            image = np.zeros((SIZE[1], SIZE[0], 3), dtype=np.uint8)
            image[:, 4 * index % SIZE[0] : 4 * index % SIZE[0] + 8] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(picture.encode(frame))
        container.mux(picture.encode(None))
        if sound is not None:
            t = np.arange(round(frames / FPS * sound.rate)) / sound.rate
            sung = np.ones(t.size, dtype=bool) if phrases is None else np.zeros(t.size, dtype=bool)
            for start, end in phrases or ():
                sung |= (t >= start) & (t < end)
            tone = np.tile(0.3 * np.sin(2 * np.pi * 440 * t) * sung, (2, 1)).astype(np.float32)
            converter = av.AudioResampler(format=sound.codec_context.codec.audio_formats[0], layout="stereo",
                                          rate=sound.rate, frame_size=sound.codec_context.frame_size or None)
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = sound.rate, round(sound_start_s * sound.rate)
            frame.time_base = Fraction(1, sound.rate)
            for converted in [*converter.resample(frame), *converter.resample(None)]:
                container.mux(sound.encode(converted))
            container.mux(sound.encode(None))
    return path


def picture_packets(path: Path) -> list[tuple[bytes, float | None, float]]:
    """Every picture packet: its bytes, presentation and decoding time in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [
            (bytes(packet), None if packet.pts is None else float(packet.pts * packet.time_base),
             float(packet.dts * packet.time_base))
            for packet in container.demux(stream) if packet.dts is not None
        ]


def sound_of(path: Path) -> tuple[str, int, np.ndarray]:
    """Codec name, rate and decoded samples `(channels, samples)` of the first sound stream."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = np.concatenate([frame.to_ndarray() for frame in container.decode(stream)], axis=1)
        return stream.codec_context.name, stream.rate, samples


def new_sound(seconds: float = FRAMES / FPS, channels: int = 2) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return np.tile(0.25 * np.sin(2 * np.pi * 220 * t), (channels, 1)).astype(np.float32)


@pytest.mark.parametrize("extension", list(KINDS))
def test_remux_keeps_the_picture_bit_identical_and_replaces_the_sound(tmp_path: Path, extension: str) -> None:
    upload = make_video(tmp_path / f"clip{extension}")
    out = remux_with_audio(upload, new_sound(), RATE, output_path(upload, tmp_path, "clip_karaoke"))
    assert out.suffix == extension
    before, after = picture_packets(upload), picture_packets(out)
    assert [data for data, _, _ in after] == [data for data, _, _ in before]
    assert [pts for _, pts, _ in after] == pytest.approx([pts for _, pts, _ in before], abs=1e-3)
    codec, rate, samples = sound_of(out)
    assert codec == ("aac" if extension == ".mp4" else "opus")
    assert samples.shape[0] == 2 and samples.shape[1] >= 0.9 * FRAMES / FPS * rate
    assert 0.1 < np.abs(samples).max() < 0.4  # the new 0.25-peak tone, not silence and not the old 0.3 tone
    with av.open(str(out)) as container:
        assert len(container.streams.audio) == 1 and len(container.streams.video) == 1


def test_new_sound_keeps_the_uploads_sound_timing(tmp_path: Path) -> None:
    upload = make_video(tmp_path / "late.mp4", sound_start_s=0.5)
    burst_s = 0.3  # a tone burst 0.3 s after the start of the stem
    sound = np.zeros((2, round(0.7 * RATE)), dtype=np.float32)
    burst = np.arange(round(0.01 * RATE))
    sound[:, round(burst_s * RATE) + burst] = 0.5 * np.sin(2 * np.pi * 1000 * burst / RATE)
    out = remux_with_audio(upload, sound, RATE, tmp_path / "late_vocals.mp4")
    # Sample 0 of a stem is the first sample decoded from the upload (AAC priming included), at its time.
    assert onset_s(out) == pytest.approx(first_decoded_s(upload) + burst_s, abs=0.003)


def first_decoded_s(path: Path) -> float:
    with av.open(str(path)) as container:
        first = next(container.decode(audio=0))
        return float(first.pts * first.time_base)


def onset_s(path: Path) -> float:
    """When the decoded sound first gets loud, in seconds on the file's clock."""
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            loud = np.flatnonzero(np.abs(frame.to_ndarray()).max(axis=0) > 0.25)
            if loud.size:
                return float(frame.pts * frame.time_base) + loud[0] / frame.sample_rate
    raise AssertionError("no sound")


def test_mono_stems_make_a_mono_sound_track(tmp_path: Path) -> None:
    upload = make_video(tmp_path / "clip.mp4")
    out = remux_with_audio(upload, new_sound(channels=1), RATE, tmp_path / "clip_vocals.mp4")
    assert sound_of(out)[2].shape[0] == 1


def test_other_containers_come_back_as_matroska_with_opus(tmp_path: Path) -> None:
    upload = make_video(tmp_path / "old.avi")
    out = remux_with_audio(upload, new_sound(), RATE, output_path(upload, tmp_path, "old_karaoke"))
    assert out.suffix == ".mkv" and sound_of(out)[0] == "opus"
    assert [data for data, _, _ in picture_packets(out)] == [data for data, _, _ in picture_packets(upload)]


def test_probe_tells_videos_from_audio(tmp_path: Path) -> None:
    info = probe_video(make_video(tmp_path / "clip.webm"))
    assert info is not None and info.extension == ".webm" and info.video_codec == "vp9" and info.has_sound
    song = tmp_path / "song.wav"
    song.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot a video")
    assert not is_video(song) and probe_video(song) is None


def test_a_video_without_sound_gets_a_clear_message(tmp_path: Path) -> None:
    silent = make_video(tmp_path / "silent film.mp4", with_sound=False)
    with pytest.raises(NoSoundTrackError, match="video without a sound track"):
        check_sound_track(silent)
    check_sound_track(make_video(tmp_path / "talkie.mp4"))  # no error


def test_remux_refuses_a_file_without_picture(tmp_path: Path) -> None:
    sound_only = tmp_path / "sound.m4a"
    with av.open(str(sound_only), "w") as container:
        stream = container.add_stream("aac", rate=RATE)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = RATE, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(AudioDecodeError, match="no picture"):
        remux_with_audio(sound_only, new_sound(), RATE, output_path(sound_only, tmp_path, "x"))
