"""The app's callbacks and service, called directly (no server, no browser) with a tiny random model."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile as sf

import app
from model.bsmamba2 import BSMamba2
from ui.callbacks import GENERIC_ERROR_MESSAGE, NO_INPUT_MESSAGE, Callbacks, bit_depth_choices, existing_examples
from ui.config import AppConfig
from ui.results import SeparationOptions, SettingsError
from ui.service import SeparationService
from conftest import TEST_SONG_SECONDS, TINY_CONFIG, tiny_service, write_test_song
from ui.text import SEGMENT_HEADERS, clock, model_panel_markdown
from ui.zerogpu import GPU_MAX_S, gpu_seconds
from utils.errors import AudioDecodeError, AudioTooLongError, CheckpointError

FAST = SeparationOptions(output_format="wav", bit_depth=16, overlap=0.0)
WIDGETS = ("wav", 16, 0.0, False, "")  # format, bit depth, overlap, clean-up, checkpoint


def no_progress(*args: object, **kwargs: object) -> None:
    """Stands in for gr.Progress outside a request."""


@pytest.fixture(scope="module")
def service() -> SeparationService:
    service = tiny_service()
    yield service
    service.close()


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_song(tmp_path_factory.mktemp("songs") / "My Song (demo).wav")


def test_stems_have_the_uploads_rate_channels_and_length(service: SeparationService, tmp_path: Path) -> None:
    upload = write_test_song(tmp_path / "mono48k.flac", seconds=1.5, sample_rate=48000, channels=1)
    result = service.separate(upload, FAST)
    for path in (result.vocals_path, result.accompaniment_path):
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.frames) == (48000, 1, 72000)


def test_stems_add_up_to_the_upload(service: SeparationService, song: Path) -> None:
    result = service.separate(song, SeparationOptions(output_format="wav", bit_depth=32, overlap=0.0))
    mixture, _ = sf.read(song, dtype="float32")
    vocals, _ = sf.read(result.vocals_path, dtype="float32")
    accompaniment, _ = sf.read(result.accompaniment_path, dtype="float32")
    np.testing.assert_allclose(vocals + accompaniment, mixture, atol=1e-4)


def test_result_reports_phrases_summary_and_plots(service: SeparationService, song: Path) -> None:
    result = service.separate(song, FAST)
    assert result.duration_s == pytest.approx(TEST_SONG_SECONDS)
    assert all(0 <= start < end <= TEST_SONG_SECONDS + 1e-6 for start, end in result.activity.segments)
    assert result.device == "cpu" and result.processing_s > 0
    assert set(result.figures) == {"waveform", "spectrogram", "activity"}
    payload = result.api_payload()
    assert payload["segments"] == [[round(s, 3), round(e, 3)] for s, e in result.activity.segments]
    assert {"voiced_percent", "phrase_count", "longest_silence_s"} <= set(payload["summary"])
    json.dumps(payload)  # JSON-ready


def test_zip_holds_both_stems_activity_and_report(service: SeparationService, song: Path) -> None:
    result = service.separate(song, FAST)
    assert result.zip_path.name == "My Song (demo)_stems.zip"
    with zipfile.ZipFile(result.zip_path) as archive:
        names = set(archive.namelist())
        activity = json.loads(archive.read("activity.json"))
        report = archive.read("report.md").decode()
        page = archive.read("plots.html").decode()
        phrases = archive.read("phrases.csv").decode().splitlines()
    assert names == {"My Song (demo)_vocals.wav", "My Song (demo)_accompaniment.wav", "activity.json", "report.md",
                     "plots.html", "phrases.csv"}
    assert activity["segments"] == [[round(s, 3), round(e, 3)] for s, e in result.activity.segments]
    assert "## Sung phrases" in report and "tiny random test model" in report
    assert page.count("Plotly.newPlot(") == 3 and "“My Song (demo)” (0:02.0)" in page
    assert phrases[0] == "phrase,start_s,end_s,length_s" and len(phrases) == 1 + result.activity.phrase_count


def test_repeat_request_is_served_from_the_cache(song: Path) -> None:
    service = tiny_service()
    try:
        first = service.separate(song, FAST)
        again = service.separate(song, FAST)
        other = service.separate(song, SeparationOptions(output_format="flac", overlap=0.0))
    finally:
        service.close()
    assert not first.from_cache and again.from_cache
    assert again.vocals_path == first.vocals_path
    assert other.folder != first.folder and not other.from_cache  # other settings: a fresh folder


def test_cache_evicts_oldest_result_and_deletes_its_files(song: Path) -> None:
    service = tiny_service(result_cache_size=1)
    try:
        first = service.separate(song, FAST)
        service.separate(song, SeparationOptions(output_format="flac", overlap=0.0))
        assert not first.folder.exists()
        assert not service.separate(song, FAST).from_cache
    finally:
        service.close()


def test_upload_is_never_modified(service: SeparationService, song: Path) -> None:
    before = hashlib.sha256(song.read_bytes()).hexdigest()
    service.separate(song, SeparationOptions(output_format="mp3", overlap=0.0))
    assert hashlib.sha256(song.read_bytes()).hexdigest() == before


def test_separate_callback_fills_every_output(service: SeparationService, song: Path) -> None:
    outputs = Callbacks(service).separate(str(song), None, *WIDGETS, progress=no_progress)
    vocals, accompaniment, vocals_download, accompaniment_download, zip_path, summary, rows = outputs[:7]
    assert vocals == vocals_download and accompaniment == accompaniment_download
    assert Path(zip_path).suffix == ".zip" and Path(vocals).is_file()
    assert "Voice in" in summary and "cpu" in summary
    assert all(len(row) == len(SEGMENT_HEADERS) for row in rows)
    assert len(outputs) == 10


def test_file_box_wins_over_the_player(service: SeparationService, song: Path, tmp_path: Path) -> None:
    other = write_test_song(tmp_path / "other.wav", seconds=1.0)
    outputs = Callbacks(service).separate(str(song), str(other), *WIDGETS, progress=no_progress)
    assert Path(outputs[0]).name == "other_vocals.wav"


def test_not_audio_gives_a_clear_message(service: SeparationService, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.mp3"
    bogus.write_text("these are my lyrics, not a song")
    with pytest.raises(AudioDecodeError):
        service.separate(bogus, FAST)
    with pytest.raises(gr.Error) as raised:
        Callbacks(service).separate(str(bogus), None, *WIDGETS, progress=no_progress)
    assert "notes.mp3" in raised.value.message


def test_no_upload_asks_for_a_song(service: SeparationService) -> None:
    with pytest.raises(gr.Error) as raised:
        Callbacks(service).separate(None, None, *WIDGETS, progress=no_progress)
    assert raised.value.message == NO_INPUT_MESSAGE


def test_song_over_the_limit_is_refused(song: Path) -> None:
    service = tiny_service(max_minutes=1.0 / 60)  # one second
    try:
        with pytest.raises(AudioTooLongError):
            service.separate(song, FAST)
    finally:
        service.close()


def test_unexpected_failure_becomes_a_generic_message(
    service: SeparationService, song: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("CUDA error: an illegal memory access")

    monkeypatch.setattr(service, "separate", broken)
    with pytest.raises(gr.Error) as raised:
        Callbacks(service).separate(str(song), None, *WIDGETS, progress=no_progress)
    assert raised.value.message == GENERIC_ERROR_MESSAGE


def test_unknown_format_is_a_settings_error(service: SeparationService, song: Path) -> None:
    with pytest.raises(SettingsError, match="ogg"):
        service.separate(song, SeparationOptions(output_format="ogg"))
    with pytest.raises(SettingsError, match="16, 24"):
        service.separate(song, SeparationOptions(output_format="flac", bit_depth=32))


def test_choosing_a_checkpoint_is_off_unless_allowed(service: SeparationService, song: Path) -> None:
    with pytest.raises(SettingsError, match="switched off"):
        service.separate(song, SeparationOptions(checkpoint="someone/else"))


def test_app_starts_without_weights_and_says_why(tmp_path: Path, song: Path) -> None:
    service = SeparationService(AppConfig(), checkpoint=str(tmp_path / "missing.ckpt"))
    try:
        assert service.default_model is None and service.load_error
        assert "No model loaded" in model_panel_markdown(None, service.load_error)
        with pytest.raises(CheckpointError):
            service.separate(song, FAST)
        app.build_demo(service)  # the page still builds
    finally:
        service.close()


def test_app_loads_a_saved_checkpoint(tmp_path: Path) -> None:
    BSMamba2(TINY_CONFIG).save_pretrained(tmp_path / "tiny")
    service = SeparationService(AppConfig(), checkpoint=str(tmp_path / "tiny"))
    try:
        assert service.load_error is None, service.load_error
        assert "dim 16" in model_panel_markdown(service.default_model)
    finally:
        service.close()


def test_demo_model_is_labelled_as_synthetic() -> None:
    loaded = tiny_service().default_model
    loaded.kind = "bundled demo"
    assert "synthetic" in model_panel_markdown(loaded)


def test_gpu_time_grows_with_the_song_and_is_capped() -> None:
    assert gpu_seconds(10) < gpu_seconds(120) <= GPU_MAX_S
    assert gpu_seconds(3600) == GPU_MAX_S


def test_config_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BSMAMBA2_MAX_MINUTES", "2.5")
    monkeypatch.setenv("BSMAMBA2_ALLOW_CHECKPOINT_CHOICE", "1")
    monkeypatch.delenv("BSMAMBA2_COMPILE", raising=False)
    config = AppConfig.from_env()
    assert config.max_duration_s == 150 and config.allow_checkpoint_choice and config.compile
    monkeypatch.setenv("BSMAMBA2_COMPILE", "off")
    assert not AppConfig.from_env().compile
    monkeypatch.setenv("BSMAMBA2_MAX_MINUTES", "a lot")
    with pytest.raises(ValueError, match="BSMAMBA2_MAX_MINUTES"):
        AppConfig.from_env()


def test_bit_depth_follows_the_format() -> None:
    assert bit_depth_choices("mp3")["visible"] is False
    assert bit_depth_choices("flac")["choices"] == [16, 24]


def test_clock_shows_minutes_seconds_and_tenths() -> None:
    assert clock(83.25) == "1:23.2" or clock(83.25) == "1:23.3"
    assert clock(0) == "0:00.0" and clock(599.96) == "10:00.0"


def test_examples_folder_may_be_empty_or_missing(tmp_path: Path) -> None:
    assert existing_examples(tmp_path / "nowhere") == []
    write_test_song(tmp_path / "a.wav")
    (tmp_path / "readme.txt").write_text("not audio")
    assert existing_examples(tmp_path) == [[str(tmp_path / "a.wav")]]


def test_page_builds_with_examples_and_a_named_api(tmp_path: Path) -> None:
    write_test_song(tmp_path / "example.wav")
    service = tiny_service(examples_dir=tmp_path)
    try:
        demo = app.build_demo(service)
        api_names = {fn.api_name for fn in demo.fns.values()}
        assert {"separate", "separate_ui"} <= api_names
    finally:
        service.close()
