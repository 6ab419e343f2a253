"""utils.audio: what an upload becomes for the model, and how stems go back to disk.

Every file is generated here (soundfile, PyAV) into tmp_path; nothing is downloaded.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from utils.audio import (
    SAMPLE_RATE,
    MP3_PEAK_CEILING,
    OUTPUT_FORMATS,
    PCM_PEAK_CEILING,
    SURROUND_GAIN,
    load_audio,
    make_zip,
    output_extension,
    resampled_length,
    to_original_layout,
    write_audio,
)
from utils.errors import AudioDecodeError, AudioTooLongError, AudioTooShortError, EmptyAudioError

RATE = SAMPLE_RATE
# libsndfile writes integers scaled by 2**(bits-1) - 1 and reads them back divided by 2**(bits-1): allow
# rounding plus that 1-LSB asymmetry.
PCM_TOLERANCE = {16: 2**-14, 24: 2**-22}


def sine(seconds: float, rate: int = RATE, channels: int = 2, freq: float = 1000.0, amplitude: float = 0.5):
    """float32 (samples, channels) sine: the layout soundfile reads and writes."""
    t = np.arange(round(seconds * rate)) / rate
    wave = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(wave[:, None], channels, axis=1)


def rms_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)))


def middle(x: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """The last axis without its first and last ``fraction``: away from codec and resampler edges."""
    cut = int(x.shape[-1] * fraction)
    return x[..., cut:-cut]


def encode_with_pyav(path: Path, samples: np.ndarray, rate: int, codec: str, layout: str) -> Path:
    """Encode (samples, channels) float32 with FFmpeg, e.g. AAC into .m4a."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout=layout)
        frame.rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


def add_video_track(container: av.container.OutputContainer) -> av.VideoStream:
    video = container.add_stream("mpeg4", rate=10)
    video.width = video.height = 32
    video.pix_fmt = "yuv420p"
    return video


def mux_video(container: av.container.OutputContainer, video: av.VideoStream) -> None:
    for index in range(10):
        frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
        frame.pts = index
        for packet in video.encode(frame):
            container.mux(packet)
    for packet in video.encode(None):
        container.mux(packet)


# --- decoding every format ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "subtype", "tolerance"),
    [
        (".wav", "PCM_16", PCM_TOLERANCE[16]),
        (".wav", "PCM_24", PCM_TOLERANCE[24]),
        (".wav", "FLOAT", 0.0),
        (".flac", "PCM_16", PCM_TOLERANCE[16]),
        (".flac", "PCM_24", PCM_TOLERANCE[24]),
        (".aiff", "PCM_16", PCM_TOLERANCE[16]),
    ],
)
def test_lossless_files_decode_to_the_samples_written(tmp_path, suffix, subtype, tolerance):
    samples = sine(1.0)
    path = tmp_path / f"song{suffix}"
    sf.write(path, samples, RATE, subtype=subtype)

    decoded = load_audio(path)

    assert decoded.waveform.dtype == np.float32
    assert decoded.waveform.flags.c_contiguous
    np.testing.assert_allclose(decoded.waveform, samples.T, rtol=0, atol=tolerance)
    assert decoded.warnings == ()


@pytest.mark.parametrize(
    ("suffix", "options"), [(".mp3", {"format": "MP3"}), (".ogg", {"subtype": "VORBIS"})]
)
def test_lossy_files_decode_at_the_level_and_length_written(tmp_path, suffix, options):
    samples = sine(1.0)
    path = tmp_path / f"song{suffix}"
    sf.write(path, samples, RATE, **options)

    decoded = load_audio(path)

    assert decoded.waveform.shape[1] == pytest.approx(RATE, abs=0.01 * RATE)
    assert rms_db(middle(decoded.waveform)) == pytest.approx(rms_db(samples), abs=0.5)


def test_m4a_is_decoded_through_ffmpeg(tmp_path):
    samples = sine(1.0)
    path = encode_with_pyav(tmp_path / "phone.m4a", samples, RATE, "aac", "stereo")

    decoded = load_audio(path)

    assert decoded.source_format == "M4A (aac)"
    assert decoded.duration_s == pytest.approx(1.0, abs=0.1)  # AAC adds up to ~50 ms of encoder priming
    assert rms_db(middle(decoded.waveform)) == pytest.approx(rms_db(samples), abs=0.5)


def test_the_sound_track_of_a_video_is_decoded(tmp_path):
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        video = add_video_track(container)
        audio = container.add_stream("aac", rate=RATE, layout="stereo")
        frame = av.AudioFrame.from_ndarray(sine(1.0).reshape(1, -1), format="flt", layout="stereo")
        frame.rate = RATE
        for packet in [*audio.encode(frame), *audio.encode(None)]:
            container.mux(packet)
        mux_video(container, video)

    decoded = load_audio(path)

    assert decoded.source_format == "MP4 (aac)"
    assert decoded.duration_s == pytest.approx(1.0, abs=0.1)


def test_a_video_without_sound_is_refused(tmp_path):
    path = tmp_path / "silent_film.mp4"
    with av.open(str(path), "w") as container:
        mux_video(container, add_video_track(container))

    with pytest.raises(AudioDecodeError, match="no sound track"):
        load_audio(path)


# --- conversion to the model's format -------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 22050, 48000, 96000, 192000])
def test_resampling_keeps_length_and_level(tmp_path, rate):
    samples = sine(1.0, rate=rate)
    path = tmp_path / "tone.wav"
    sf.write(path, samples, rate, subtype="FLOAT")

    decoded = load_audio(path)

    assert decoded.waveform.shape == (2, resampled_length(len(samples), rate, RATE))
    assert rms_db(middle(decoded.waveform)) == pytest.approx(rms_db(samples), abs=0.1)
    assert decoded.original_sample_rate == rate
    assert any(f"{rate / 1000:g} kHz" in warning for warning in decoded.warnings)


def test_resampled_length_rounds_half_up_like_libsoxr():
    assert resampled_length(1000, 8000, RATE) == 5513  # 5512.5
    assert resampled_length(48000, 48000, RATE) == RATE


def test_mono_is_duplicated_to_both_channels(tmp_path):
    samples = sine(1.0, channels=1)
    path = tmp_path / "mono.wav"
    sf.write(path, samples, RATE, subtype="FLOAT")

    decoded = load_audio(path)

    assert decoded.original_channels == 1
    np.testing.assert_array_equal(decoded.waveform[0], samples[:, 0])
    np.testing.assert_array_equal(decoded.waveform[1], samples[:, 0])


def test_front_left_of_an_eight_channel_file_stays_on_the_left(tmp_path):
    samples = np.zeros((RATE, 8), np.float32)
    samples[:, 0] = sine(1.0, channels=1)[:, 0]
    path = tmp_path / "surround.wav"
    sf.write(path, samples, RATE, subtype="FLOAT")

    decoded = load_audio(path)

    assert decoded.original_channels == 8
    assert np.abs(decoded.waveform[0]).max() > 0.1
    np.testing.assert_array_equal(decoded.waveform[1], 0.0)
    assert any("8 channels" in warning for warning in decoded.warnings)


def test_full_scale_on_every_channel_of_a_downmix_cannot_clip(tmp_path):
    path = tmp_path / "loud_surround.wav"
    sf.write(path, np.full((RATE, 8), 1.0, np.float32), RATE, subtype="FLOAT")

    decoded = load_audio(path)

    assert np.abs(decoded.waveform).max() <= 1.0 + 1e-6


def test_the_centre_of_a_5_1_m4a_reaches_left_and_right_equally(tmp_path):
    samples = np.zeros((RATE, 6), np.float32)
    samples[:, 2] = sine(1.0, channels=1)[:, 0]  # FC in FFmpeg's 5.1 order: FL FR FC LFE BL BR
    path = encode_with_pyav(tmp_path / "film.m4a", samples, RATE, "aac", "5.1")

    decoded = load_audio(path)

    np.testing.assert_allclose(decoded.waveform[0], decoded.waveform[1], atol=1e-6)
    # BS.775 gives the centre -3 dB on each side; each side then shares full scale with FL and two surrounds.
    centre_gain = SURROUND_GAIN / (1 + 2 * SURROUND_GAIN)
    expected_db = rms_db(samples[:, 2]) + 20 * np.log10(centre_gain)
    assert rms_db(middle(decoded.waveform[0])) == pytest.approx(expected_db, abs=0.5)


def test_nan_and_infinite_samples_are_silenced_and_counted(tmp_path):
    samples = sine(1.0)
    samples[100:105, 0] = np.nan
    samples[200, 1] = np.inf
    samples[300, 1] = -np.inf
    path = tmp_path / "broken_export.wav"
    sf.write(path, samples, RATE, subtype="FLOAT")

    decoded = load_audio(path)

    assert decoded.repaired_samples == 7
    assert np.isfinite(decoded.waveform).all()
    assert any("7 damaged samples" in warning for warning in decoded.warnings)


# --- files we refuse, or only partly read ---------------------------------------------------------------


def test_an_empty_file_is_refused(tmp_path):
    path = tmp_path / "upload.wav"
    path.touch()

    with pytest.raises(EmptyAudioError, match=r"upload\.wav"):
        load_audio(path)


def test_text_renamed_to_wav_is_refused_with_the_formats_we_read(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("lyrics, not audio\n" * 20)

    with pytest.raises(AudioDecodeError, match=r"notes\.wav.*Try WAV, FLAC, MP3, OGG or M4A"):
        load_audio(path)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(AudioDecodeError, match="couldn't find"):
        load_audio(tmp_path / "gone.wav")


def test_a_file_without_samples_is_refused(tmp_path):
    path = tmp_path / "nothing.wav"
    sf.write(path, np.zeros((0, 2), np.float32), RATE)

    with pytest.raises(EmptyAudioError, match="no audio samples"):
        load_audio(path)


def test_a_single_sample_is_too_short(tmp_path):
    path = tmp_path / "click.wav"
    sf.write(path, np.zeros((1, 2), np.float32), RATE)

    with pytest.raises(AudioTooShortError, match="1 samples"):
        load_audio(path)


def test_a_truncated_mp3_keeps_what_can_be_read_and_says_so(tmp_path):
    whole = tmp_path / "whole.mp3"
    sf.write(whole, sine(3.0), RATE, format="MP3")
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])

    decoded = load_audio(cut)

    assert 1.0 < decoded.duration_s < 2.0
    assert any("cut short" in warning for warning in decoded.warnings)


def test_an_hour_long_file_is_refused_from_its_header(tmp_path):
    rate = 8000
    path = tmp_path / "dj_set.wav"
    with sf.SoundFile(path, "w", rate, 1, "PCM_U8") as sound_file:
        minute = np.zeros(60 * rate, np.int16)
        for _ in range(60):
            sound_file.write(minute)

    # The full length in the message can only come from the header: decoding would stop at the limit.
    with pytest.raises(AudioTooLongError, match="1:00:00"):
        load_audio(path, max_duration_s=600)


def test_a_recording_that_does_not_announce_its_length_is_stopped_at_the_limit(tmp_path):
    # Browser recordings (MediaRecorder WebM) carry no duration: the limit is enforced while decoding.
    path = tmp_path / "recording.webm"
    with av.open(str(path), "w", options={"live": "1"}) as container:
        stream = container.add_stream("libopus", rate=48000, layout="stereo")
        frame = av.AudioFrame.from_ndarray(
            sine(2.0, rate=48000).reshape(1, -1), format="flt", layout="stereo"
        )
        frame.rate = 48000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)

    with pytest.raises(AudioTooLongError, match="longer than"):
        load_audio(path, max_duration_s=1.0)


# --- back to the upload's layout ------------------------------------------------------------------------


def test_stems_of_a_mono_upload_are_mono_averages():
    stem = np.stack([np.full(RATE, 0.2, np.float32), np.full(RATE, 0.4, np.float32)])

    restored = to_original_layout(stem, RATE, 1)

    assert restored.shape == (1, RATE)
    np.testing.assert_allclose(restored, 0.3, atol=1e-6)


def test_stems_go_back_to_the_upload_rate_and_exact_length(tmp_path):
    samples = sine(1.0, rate=48000)
    path = tmp_path / "48k.wav"
    sf.write(path, samples[:47999], 48000, subtype="FLOAT")
    decoded = load_audio(path)

    restored = to_original_layout(
        decoded.waveform, decoded.original_sample_rate, 2, num_samples=decoded.original_num_samples
    )

    assert restored.shape == (2, 47999)
    assert rms_db(middle(restored)) == pytest.approx(rms_db(samples), abs=0.1)


def test_stems_of_a_surround_upload_stay_stereo():
    stem = np.zeros((2, RATE), np.float32)

    assert to_original_layout(stem, RATE, 6).shape == (2, RATE)


# --- writing stems --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "bit_depth"),
    [(fmt, depth) for fmt, depths in OUTPUT_FORMATS.items() for depth in depths or (None,)],
)
def test_every_output_format_round_trips(tmp_path, fmt, bit_depth):
    stem = sine(1.0).T
    path = tmp_path / f"vocals{output_extension(fmt)}"

    report = write_audio(path, stem, RATE, fmt, bit_depth)

    written, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == RATE and report.gain_db == 0.0
    if fmt == "mp3":
        assert rms_db(middle(written.T)) == pytest.approx(rms_db(stem), abs=0.5)
    else:
        np.testing.assert_allclose(written.T, stem, rtol=0, atol=PCM_TOLERANCE.get(bit_depth, 0.0))


@pytest.mark.parametrize(
    ("fmt", "bit_depth", "ceiling"),
    [("wav", 16, PCM_PEAK_CEILING), ("flac", 24, PCM_PEAK_CEILING), ("mp3", None, MP3_PEAK_CEILING)],
)
def test_loud_stems_are_scaled_down_not_clipped_and_the_gain_is_reported(tmp_path, fmt, bit_depth, ceiling):
    stem = sine(1.0, amplitude=2.0).T

    report = write_audio(tmp_path / f"loud.{fmt}", stem, RATE, fmt, bit_depth)

    assert report.peak_dbfs == pytest.approx(20 * np.log10(2.0), abs=0.01)
    assert report.gain_db == pytest.approx(20 * np.log10(ceiling / 2.0), abs=0.01)
    assert report.warnings
    if fmt != "mp3":
        written, _ = sf.read(report.path, dtype="float32", always_2d=True)
        np.testing.assert_allclose(written.T, stem * ceiling / 2.0, atol=PCM_TOLERANCE[16])


def test_float_wav_keeps_overs_as_they_are(tmp_path):
    stem = sine(1.0, amplitude=2.0).T

    report = write_audio(tmp_path / "loud.wav", stem, RATE, "wav", 32)

    written, _ = sf.read(report.path, dtype="float32", always_2d=True)
    np.testing.assert_array_equal(written.T, stem)
    assert report.gain_db == 0.0 and report.warnings


def test_mp3_at_a_rate_it_cannot_carry_is_written_at_48_khz(tmp_path):
    report = write_audio(tmp_path / "hires.mp3", sine(0.5, rate=96000).T, 96000, "mp3")

    assert report.sample_rate == 48000 == sf.info(report.path).samplerate
    assert any("96 kHz" in warning for warning in report.warnings)


def test_an_existing_file_is_kept_unless_overwrite_is_asked(tmp_path):
    path = tmp_path / "vocals.wav"
    write_audio(path, sine(0.5).T, RATE)

    with pytest.raises(FileExistsError):
        write_audio(path, np.zeros((2, 10), np.float32), RATE)
    assert sf.info(path).frames == RATE // 2

    write_audio(path, np.zeros((2, 10), np.float32), RATE, overwrite=True)
    assert sf.info(path).frames == 10


def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def crash(self, data):
        raise OSError("disk full")

    monkeypatch.setattr(sf.SoundFile, "write", crash)

    with pytest.raises(OSError, match="disk full"):
        write_audio(tmp_path / "vocals.wav", sine(0.5).T, RATE)
    assert list(tmp_path.iterdir()) == []


def test_unknown_formats_and_bit_depths_are_rejected(tmp_path):
    with pytest.raises(ValueError):
        write_audio(tmp_path / "a.ogg", sine(0.5).T, RATE, "ogg")
    with pytest.raises(ValueError):
        write_audio(tmp_path / "a.flac", sine(0.5).T, RATE, "flac", 32)


def test_a_stem_with_nan_is_refused_rather_than_written(tmp_path):
    stem = sine(0.5).T.copy()
    stem[0, 10] = np.nan

    with pytest.raises(ValueError, match="NaN"):
        write_audio(tmp_path / "vocals.wav", stem, RATE)
    assert list(tmp_path.iterdir()) == []


def test_output_extension_names_the_format():
    assert output_extension("FLAC") == ".flac"


def test_the_zip_stores_audio_and_deflates_text(tmp_path):
    vocals = write_audio(tmp_path / "vocals.wav", sine(0.5).T, RATE).path
    notes = tmp_path / "report.json"
    notes.write_text('{"model": "BSMamba2"}')

    archive = make_zip(tmp_path / "stems.zip", {"song/vocals.wav": vocals, "song/report.json": notes})

    with zipfile.ZipFile(archive) as opened:
        infos = {info.filename: info for info in opened.infolist()}
        assert infos["song/vocals.wav"].compress_type == zipfile.ZIP_STORED
        assert infos["song/report.json"].compress_type == zipfile.ZIP_DEFLATED
        assert opened.read("song/vocals.wav") == vocals.read_bytes()
        assert opened.read("song/report.json") == notes.read_bytes()
