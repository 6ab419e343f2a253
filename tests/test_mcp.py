"""The app as an MCP server: its tools, their descriptions, and a separation called the way an assistant does.

Needs the `mcp` package (`gradio[mcp]` in requirements.txt).
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import soundfile as sf

import app
from conftest import tiny_service, write_test_song
from model.stft import SAMPLE_RATE as TEST_SAMPLE_RATE

pytest.importorskip("mcp", reason="the mcp package is not installed (pip install 'gradio[mcp]')")

SEPARATE_TOOL = "separate_api"
PREVIEW_TOOL = "preview_api"
ARGUMENTS = {"output_format": "wav", "bit_depth": 16, "overlap": 0.0, "clean_up": False, "checkpoint": ""}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    service = tiny_service()
    demo = app.build_demo(service)
    app.launch(demo, service, server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
               quiet=True, mcp_server=True)
    try:
        yield demo.local_url
    finally:
        demo.close()
        service.close()


def test_schema_lists_the_separation_and_preview_tools_only(app_url: str) -> None:
    tools = {tool["name"]: tool for tool in httpx.get(f"{app_url}gradio_api/mcp/schema", timeout=30).json()}
    assert set(tools) == {SEPARATE_TOOL, PREVIEW_TOOL}  # the page's own events are not tools
    separate = tools[SEPARATE_TOOL]
    assert "vocals" in separate["description"] and "Returns:" in separate["description"]
    assert "URL" in separate["inputSchema"]["properties"]["song"]["description"]
    assert "30 s" in tools[PREVIEW_TOOL]["description"]


def song_data_url(tmp_path: Path) -> str:
    song = write_test_song(tmp_path / "mcp song.wav", seconds=1.0)
    return "data:audio/wav;base64," + base64.b64encode(song.read_bytes()).decode()


def test_separation_tool_returns_stem_urls_and_phrases(app_url: str, tmp_path: Path) -> None:
    progress: list[float] = []
    texts = asyncio.run(call_tool(f"{app_url}gradio_api/mcp/", SEPARATE_TOOL, ARGUMENTS | {"song": song_data_url(tmp_path)},
                                  progress))
    vocals_url, accompaniment_url, phrases = texts
    assert vocals_url.startswith("http") and vocals_url.endswith("_vocals.wav")
    downloaded = tmp_path / "vocals.wav"
    downloaded.write_bytes(httpx.get(vocals_url, timeout=30).content)
    assert sf.info(str(downloaded)).frames == TEST_SAMPLE_RATE
    assert accompaniment_url.endswith("_accompaniment.wav") and "segments" in phrases
    assert progress  # queued tools report progress to clients that ask for it


def test_without_progress_gradio_returns_one_text_that_still_holds_the_urls(app_url: str, tmp_path: Path) -> None:
    """Gradio 6.31 joins a multi-output tool's result into one text when the client sends no progress token."""
    (text,) = asyncio.run(call_tool(f"{app_url}gradio_api/mcp/", PREVIEW_TOOL,
                                    ARGUMENTS | {"song": song_data_url(tmp_path)}))
    assert "(preview)_vocals.wav" in text and "gradio_api/file=" in text and "first_voice_s" in text


async def call_tool(url: str, name: str, arguments: dict, progress: list[float] | None = None) -> list[str]:
    """Call one tool over MCP's streamable HTTP transport; the text of each content item.

    With `progress`, the call asks for progress notifications and collects them there.
    """
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(done)

    async with streamablehttp_client(url) as (read, write, _), ClientSession(read, write) as session:
        await session.initialize()
        result = await session.call_tool(name, arguments, progress_callback=on_progress if progress is not None
                                         else None)
    assert not result.isError, result.content
    return [item.text for item in result.content]
