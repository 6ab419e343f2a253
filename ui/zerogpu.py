"""Hugging Face ZeroGPU support: `@spaces.GPU` when the `spaces` package is installed, a no-op otherwise.

On a ZeroGPU Space a GPU is attached only while a `@spaces.GPU` function runs, for at most `duration`
seconds; asking for less than the default gets a request through the queue sooner, so the duration is
estimated from the song's length.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# Seconds of GPU time asked for: a fixed part (moving the model, warming up kernels) plus a share of the
# song's length, within what ZeroGPU grants a request. BSMamba2 runs far faster than real time on a GPU
# (see scripts/bench_model.py); 0.25 s per second of song leaves a wide margin.
GPU_BASE_S = 20.0
GPU_S_PER_SONG_S = 0.25
GPU_MAX_S = 120.0

try:  # pragma: no cover - only on Hugging Face Spaces
    import spaces  # type: ignore[import-not-found]
except ImportError:
    spaces = None


def gpu_seconds(song_seconds: float) -> int:
    """GPU seconds to ask ZeroGPU for, for a song of `song_seconds`."""
    return int(min(GPU_MAX_S, GPU_BASE_S + GPU_S_PER_SONG_S * max(0.0, song_seconds)))


def gpu_task(duration: Callable[..., int]) -> Callable[[F], F]:
    """`spaces.GPU(duration=duration)` where `spaces` is importable; otherwise the function unchanged.

    `duration` receives the same arguments as the decorated function and returns seconds.
    """

    def decorate(fn: F) -> F:
        if spaces is None:
            return fn
        logger.info("ZeroGPU: %s runs under @spaces.GPU", fn.__name__)
        return spaces.GPU(duration=duration)(fn)  # pragma: no cover

    return decorate
