"""Hugging Face ZeroGPU support: `@spaces.GPU` when the `spaces` package is installed, a no-op otherwise.

On a ZeroGPU Space a GPU is attached only while a `@spaces.GPU` function runs, for at most `duration`
seconds, in a worker process: nothing done at start-up in the main process warms the GPU. Asking for less
than the default gets a request through the queue sooner, so the duration is estimated from the song's
length, plus the Triton compile and autotune of mamba_ssm's scan on the first call. That cost is paid once
per Space, not per worker: Triton keeps compiled kernels and (with `model.kernels`' TRITON_CACHE_AUTOTUNING)
autotune results on disk, and a marker file beside them says that a GPU call has already filled them.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# Seconds of GPU time asked for, within what ZeroGPU grants a request. Provisional until a GPU run measures
# them: `scripts/gpu_check.py`'s "zerogpu" section prints the measured values and the constants to set here
# (docs/GPU.md). Until then each is a deliberate over-estimate: a request cut short loses the whole song.
GPU_BASE_S = 20.0
"""Moving the model to the GPU, the CUDA context, decoding-side work on the GPU: a margin, not yet measured."""
GPU_FIRST_CALL_S = 30.0
"""Triton's compile and autotune of the scan on the first call: ~28 s was reported on an H100 for Mamba2's
SSD in another project (issue 13)."""
GPU_S_PER_SONG_S = 0.25
"""GPU seconds per second of song: 30x the issue's target on an H200 (120x real time) for a ZeroGPU slice."""
GPU_MAX_S = 120.0

TRITON_CACHE_ENV = "TRITON_CACHE_DIR"
TRITON_DEFAULT_CACHE = Path.home() / ".triton" / "cache"
WARM_MARKER_NAME = "bsmamba2-gpu-warm"

try:  # pragma: no cover - only on Hugging Face Spaces
    import spaces  # type: ignore[import-not-found]
except ImportError:
    spaces = None


def warm_marker() -> Path:
    """The file that says Triton's on-disk caches already hold this model's compiled and tuned kernels."""
    return Path(os.environ.get(TRITON_CACHE_ENV) or TRITON_DEFAULT_CACHE) / WARM_MARKER_NAME


def kernels_warm() -> bool:
    return warm_marker().is_file()


def gpu_seconds(song_seconds: float, warm: bool | None = None) -> int:
    """GPU seconds to ask ZeroGPU for, for a song of `song_seconds`; `warm` defaults to `kernels_warm()`."""
    warm = kernels_warm() if warm is None else warm
    first_call = 0.0 if warm else GPU_FIRST_CALL_S
    return int(min(GPU_MAX_S, GPU_BASE_S + first_call + GPU_S_PER_SONG_S * max(0.0, song_seconds)))


def marking_warm(fn: F) -> F:
    """`fn`, which writes the warm marker after its first successful return."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        if not kernels_warm():
            marker = warm_marker()
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
            logger.info("ZeroGPU: kernels compiled and tuned; later calls ask for %.0f s less", GPU_FIRST_CALL_S)
        return result

    return run  # type: ignore[return-value]


def gpu_task(duration: Callable[..., int]) -> Callable[[F], F]:
    """`spaces.GPU(duration=duration)` where `spaces` is importable; otherwise the function unchanged.

    `duration` receives the same arguments as the decorated function and returns seconds. On ZeroGPU the
    function also marks the kernels warm after its first success (`marking_warm`).
    """

    def decorate(fn: F) -> F:
        if spaces is None:
            return fn
        logger.info("ZeroGPU: %s runs under @spaces.GPU", fn.__name__)  # pragma: no cover
        return spaces.GPU(duration=duration)(marking_warm(fn))  # pragma: no cover

    return decorate
