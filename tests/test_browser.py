"""The real page in headless Chromium: upload, separate, listen, look, download the zip; upload a video, jump
to a phrase, play the karaoke remix, download the karaoke video, take a screenshot (in the test's tmp folder;
`scripts/make_screenshot.py` makes `docs/screenshot.png` with the bundled model).

Needs the `playwright` Python package and a Chromium at /usr/bin/chromium (Debian's `chromium`; Playwright's
own browser download is not used). Run with `pytest -m browser`.
"""

from __future__ import annotations

import importlib.util
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import app
from conftest import tiny_service, write_test_song
from test_video import make_video, picture_packets

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
VIEWPORT = {"width": 1400, "height": 1000}
PAGE_TIMEOUT_MS = 60_000
SEPARATION_TIMEOUT_MS = 180_000  # a shared CPU with training running beside the tests can be slow

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="the playwright Python package is not installed (pip install playwright)"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    service = tiny_service(voice_detector="level")
    demo = app.build_demo(service)
    app.launch(demo, service, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
               quiet=True)
    try:
        yield demo.local_url
    finally:
        demo.close()
        service.close()


@pytest.fixture()
def page(app_url: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        page.goto(app_url)
        yield page
        context.close()
        browser.close()


def test_upload_separate_listen_download(page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=PAGE_TIMEOUT_MS)  # a busy shared CPU makes the default 5 s too short
    song = write_test_song(tmp_path / "browser song.wav")
    expect(page.locator("#model-panel")).to_contain_text("tiny random test model")
    page.locator("#file-input input[type=file]").set_input_files(str(song))
    expect(page.locator("#file-input")).to_contain_text("browser song")  # name and extension are separate spans
    page.locator("#separate-button").click()

    expect(page.locator("#summary")).to_contain_text("Voice in", timeout=SEPARATION_TIMEOUT_MS)
    for plot in ("#activity-plot", "#waveform-plot", "#spectrogram-plot"):
        expect(page.locator(f"{plot} .js-plotly-plot")).to_be_visible()
    for player, stem in (("#vocals-player", "vocals"), ("#accompaniment-player", "accompaniment")):
        expect(page.locator(f'{player} a[href*="_{stem}.flac"]').first).to_be_attached()
        expect(page.locator(f"{player} audio").first).to_be_attached()
    expect(page.locator("#segments")).to_contain_text("start")

    with page.expect_download() as download_info:
        page.locator("#download-zip").click()
    download = download_info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.name == "browser song_stems.zip"
    with zipfile.ZipFile(saved) as archive:
        assert {"activity.json", "report.md"} <= set(archive.namelist())

    # Every curve is drawn along the song, not collapsed into one point off the chart.
    for plot in ("#activity-plot", "#waveform-plot"):
        path = page.locator(f"{plot} path.js-line").first.get_attribute("d")
        assert path.count("L") > 10, f"{plot}: the curve is not drawn ({path[:40]!r})"


def test_video_phrase_jump_karaoke_remix_and_video_download(page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=PAGE_TIMEOUT_MS)
    clip = make_video(tmp_path / "phrased clip.mp4", frames=40, phrases=[(0.5, 1.5), (2.5, 3.5)])
    page.locator("#file-input input[type=file]").set_input_files(str(clip))
    expect(page.locator("#file-input")).to_contain_text("phrased clip")
    page.locator("#separate-button").click()
    expect(page.locator("#summary li").first).to_contain_text("Voice in", timeout=SEPARATION_TIMEOUT_MS)
    expect(page.locator("#phrase-label")).to_contain_text("Phrase 1 of 2")

    # The second row of the phrase table: both stem players move to 0:02.4.
    for player in ("#vocals-player", "#accompaniment-player"):
        expect(page.locator(f"{player} #time")).to_have_text("0:00")
    page.locator("#segments").get_by_text("0:02.4").click()
    expect(page.locator("#phrase-label")).to_contain_text("Phrase 2 of 2 · 0:02.4")
    for player in ("#vocals-player", "#accompaniment-player"):
        expect(page.locator(f"{player} #time")).to_have_text("0:02")
    page.locator("#previous-phrase").click()
    expect(page.locator("#vocals-player #time")).to_have_text("0:00")

    # The karaoke preset renders the remix from the stems, and it plays.
    page.locator("#preset-karaoke").click()
    expect(page.locator('#remix-player a[href*="_karaoke.flac"]').first).to_be_attached()
    expect(page.locator("#vocals-level input[type=number]")).to_have_value("-40")
    expect(page.locator("#remix-player #duration")).not_to_have_text("0:00")  # loaded: a play click counts
    page.locator("#remix-player .play-pause-button").click()
    expect(page.locator("#remix-player #time")).not_to_have_text("0:00", timeout=PAGE_TIMEOUT_MS)
    page.locator("#remix-player .play-pause-button").click()

    # The karaoke video: the upload's picture, packet for packet.
    expect(page.locator("#karaoke-video video")).to_be_attached()
    with page.expect_download() as download_info:
        page.locator("#karaoke-video [data-testid=download-link], #karaoke-video a[download]").first.click()
    saved = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    assert saved.name == "phrased clip_karaoke.mp4"
    assert [data for data, _, _ in picture_packets(saved)] == [data for data, _, _ in picture_packets(clip)]

    page.locator("#segments").get_by_text("0:02.4").click()  # the screenshot shows a phrase selected
    page.wait_for_timeout(500)  # let the plots finish their transitions
    page.screenshot(path=str(tmp_path / "screenshot.png"), full_page=True)  # to look at; docs/ has the real one
