"""`docs/screenshot.png`: the app with its bundled model and detector, after separating a sparse example song.

    python scripts/make_screenshot.py [--song examples/sparse-voice-10pc.flac] [--out docs/screenshot.png]

Needs Debian's chromium and the playwright package (both in the test setup, see .ci/run). The app runs
in-process on a free local port with the defaults a visitor gets; the second phrase is selected so the
players show the jump.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import app  # noqa: E402
from ui.config import AppConfig  # noqa: E402
from ui.service import SeparationService  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1400, "height": 1000}
SEPARATION_TIMEOUT_MS = 600_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--song", type=Path, default=REPO / "examples" / "sparse-voice-10pc.flac")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshot.png")
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright

    service = SeparationService(AppConfig())
    demo = app.build_demo(service)
    app.launch(demo, service, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.goto(demo.local_url)
            page.locator("#file-input input[type=file]").set_input_files(str(args.song))
            page.locator("#separate-button").click()
            expect(page.locator("#summary li").first).to_contain_text("Voice in", timeout=SEPARATION_TIMEOUT_MS)
            rows = page.locator("#segments tbody tr")
            if rows.count() > 1:
                rows.nth(1).locator("td").nth(1).click()
            for player in ("#vocals-player", "#accompaniment-player"):  # each waveform drawn, its length known
                expect(page.locator(f"{player} #duration")).not_to_have_text("0:00", timeout=60_000)
            page.wait_for_timeout(1500)  # let the plots finish their transitions
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
    finally:
        demo.close()
        service.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
