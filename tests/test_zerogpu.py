"""The ZeroGPU duration: the song's share, plus the Triton compile until a GPU call has warmed the caches."""

from __future__ import annotations

from pathlib import Path

import pytest

from ui import zerogpu


@pytest.fixture(autouse=True)
def triton_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(zerogpu.TRITON_CACHE_ENV, str(tmp_path / "triton"))
    return tmp_path / "triton"


def test_the_first_call_asks_for_the_compile_and_autotune_too():
    assert gpu_seconds_delta(60) == int(zerogpu.GPU_FIRST_CALL_S)


def gpu_seconds_delta(song_seconds: float) -> int:
    return zerogpu.gpu_seconds(song_seconds, warm=False) - zerogpu.gpu_seconds(song_seconds, warm=True)


def test_a_successful_call_marks_the_kernels_warm_in_the_triton_cache(triton_cache: Path):
    cold = zerogpu.gpu_seconds(60)
    assert zerogpu.marking_warm(lambda song: song * 2)(21) == 42
    assert (triton_cache / zerogpu.WARM_MARKER_NAME).is_file()
    assert zerogpu.gpu_seconds(60) == cold - int(zerogpu.GPU_FIRST_CALL_S)


def test_a_failed_call_leaves_the_kernels_cold():
    def failing() -> None:
        raise RuntimeError("CUDA out of memory")

    with pytest.raises(RuntimeError):
        zerogpu.marking_warm(failing)()
    assert not zerogpu.kernels_warm()


def test_longer_songs_ask_for_more_within_the_cap():
    assert zerogpu.gpu_seconds(10, warm=True) < zerogpu.gpu_seconds(120, warm=True) <= zerogpu.GPU_MAX_S
    assert zerogpu.gpu_seconds(3600, warm=False) == zerogpu.GPU_MAX_S


def test_without_spaces_the_task_is_the_plain_function():
    def separate() -> str:
        return "stems"

    assert zerogpu.gpu_task(duration=lambda: 1)(separate) is separate
