"""The app launched in-process on a free port and driven through its API with gradio_client."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

import app
from ui.service import SeparationService
from conftest import TEST_SONG_SECONDS, tiny_service, write_test_song
from model.stft import SAMPLE_RATE as TEST_SAMPLE_RATE

SETTINGS = ("wav", 16, 0.0, False, "")  # output format, bit depth, overlap, clean-up, checkpoint


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, SeparationService]]:
    service = tiny_service()
    demo = app.build_demo(service)
    app.launch(demo, service, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
               quiet=True)
    try:
        yield demo.local_url, service
    finally:
        demo.close()
        service.close()


@pytest.fixture(scope="module")
def client(server: tuple[str, SeparationService]) -> Client:
    return Client(server[0], verbose=False)


def separate(client: Client, song: Path) -> tuple[str, str, dict]:
    return client.predict(handle_file(str(song)), *SETTINGS, api_name="/separate")


def test_api_lists_the_separate_endpoint(client: Client) -> None:
    api = client.view_api(print_info=False, return_format="dict")
    assert {"/separate", "/preview"} <= set(api["named_endpoints"])
    assert "/separate_ui" not in api["named_endpoints"]  # the page's own event stays out of the docs


def test_upload_returns_both_stems_and_the_phrases(client: Client, tmp_path: Path) -> None:
    song = write_test_song(tmp_path / "song.wav")
    vocals, accompaniment, activity = separate(client, song)
    for path in (vocals, accompaniment):
        audio, rate = sf.read(path, dtype="float32")
        assert rate == TEST_SAMPLE_RATE and audio.shape == (round(TEST_SONG_SECONDS * TEST_SAMPLE_RATE), 2)
    mixture, _ = sf.read(song, dtype="float32")
    np.testing.assert_allclose(sf.read(vocals)[0] + sf.read(accompaniment)[0], mixture, atol=1e-3)
    assert isinstance(activity["segments"], list) and activity["summary"]["duration_s"] == TEST_SONG_SECONDS


def test_bad_file_gives_a_clear_error_and_the_server_keeps_working(client: Client, tmp_path: Path) -> None:
    bogus = tmp_path / "broken.wav"
    bogus.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    with pytest.raises(AppError) as raised:
        separate(client, bogus)
    assert "broken.wav" in str(raised.value)
    after = write_test_song(tmp_path / "after.wav", seconds=1.0)
    vocals, _, _ = client.predict(song=handle_file(str(after)), api_name="/separate")  # settings at defaults
    assert sf.info(vocals).frames == TEST_SAMPLE_RATE and vocals.endswith("after_vocals.flac")


def test_page_event_returns_players_downloads_and_plots(client: Client, tmp_path: Path) -> None:
    song = write_test_song(tmp_path / "page.wav", seconds=1.0)
    outputs = client.predict(None, handle_file(str(song)), *SETTINGS, api_name="/separate_ui")
    vocals, accompaniment, _, _, zip_path, summary, table, waveform, spectrogram, activity = outputs[:10]
    assert sf.info(vocals).frames == TEST_SAMPLE_RATE and Path(zip_path).suffix == ".zip"
    assert "Voice in" in summary and table["headers"] == ["#", "start", "end", "length"]
    assert all(plot is not None for plot in (waveform, spectrogram, activity))


def test_preview_returns_an_excerpt_and_where_it_lies(client: Client, tmp_path: Path) -> None:
    song = write_test_song(tmp_path / "preview.wav")
    vocals, accompaniment, activity = client.predict(handle_file(str(song)), *SETTINGS, api_name="/preview")
    assert vocals.endswith("preview (preview)_vocals.wav") and sf.info(accompaniment).frames > 0
    assert set(activity["preview"]) == {"start_s", "end_s", "first_voice_s"}
    assert activity["preview"]["end_s"] == TEST_SONG_SECONDS  # a 2-s song is previewed whole
