"""Optional CUDA kernels for the Mamba2 scan, and choosing which scan a model runs on which device.

mamba_ssm's Triton SSD (`mamba_chunk_scan_combined`) computes what `model.ssd.ssd_scan` computes, so it
plugs into the scan registry of `model.mamba2` as the backend "mamba_ssm". It is only ever imported on a
machine with CUDA, and only the Triton files are needed: when the package's `__init__` cannot be imported (it
loads the compiled `selective_scan_cuda`, which a source install without a CUDA build lacks), the Triton SSD
files are loaded without running that `__init__`. Mamba2's depthwise conv stays ours, so causal-conv1d is not
needed either. Before it is registered the kernel is compiled and checked once against the PyTorch scan
(`smoke_test`), so a broken install or a Triton compile failure shows at start-up, as a warning, and the
model falls back to the PyTorch scan instead of failing on the first song.

The wrapper around the kernel fits the chunk to the sequence (the 62-step band sequences get 64-step chunks,
not 256) and splits the batch so that no launch exceeds CUDA's grid limit.

"fp32" with the kernel is TF32 inside it: Triton's `tl.dot` rounds float32 operands to a 10-bit mantissa
(about 1e-3 relative), whatever `torch.backends.cuda.matmul.allow_tf32` says. `triton_fp32_precision("ieee")`
switches the kernel to IEEE float32 for parity checks.

    defaults = use_device_defaults(model, device)   # backend on every mixer; defaults.batch_size for the separator
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import logging
import math
import os
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from model.mamba2 import (
    TORCH_SCAN_CHUNK,
    Mamba2,
    ScanFn,
    available_scan_backends,
    register_scan_backend,
    select_scan_backend,
)
from model.ssd import NO_DT_LIMIT, ssd_scan

__all__ = [
    "MAMBA_SSM_BACKEND",
    "TORCH_BACKEND",
    "DeviceDefaults",
    "batch_pieces",
    "best_scan_backend",
    "device_defaults",
    "kernel_chunk_size",
    "register_mamba_ssm_backend",
    "smoke_test",
    "triton_fp32_precision",
    "use_device_defaults",
    "use_scan_backend",
]

log = logging.getLogger(__name__)

TORCH_BACKEND = "torch"
MAMBA_SSM_BACKEND = "mamba_ssm"

MAMBA_SSM_CHUNK_SIZE = 256
"""mamba_ssm's `Mamba2(chunk_size=256)` default, the size its Triton kernels are tuned and tested at: the
largest chunk the wrapper passes; shorter sequences get `kernel_chunk_size(length)`."""

MIN_KERNEL_CHUNK = 16
"""Smallest chunk passed to the kernel: `tl.dot` needs tiles of at least 16 rows."""

CUDA_MAX_GRID_Y = 65_535
"""CUDA's limit on grid axis y. mamba_ssm launches its chunk-state and chunk-scan kernels with
batch × chunks on that axis, so one launch takes at most this many (sequence, chunk) pairs."""

CPU_BATCH_SIZE = 4
"""Chunks per forward pass on a CPU: measured on a 2-core CPU (README), bounded by memory, not speed."""

CUDA_BATCH_SIZE = 8
"""Chunks per forward pass on CUDA: the official inference's batch (`src/conf/test_dataset/default.yaml`).
To be replaced by the fastest batch that scripts/gpu_check.py measures (docs/GPU.md)."""

MAMBA_SSM_PACKAGE = "mamba_ssm"
TRITON_SSD_MODULE = "mamba_ssm.ops.triton.ssd_combined"
"""Imports only torch, triton, einops, packaging and sibling files under `mamba_ssm/ops/triton` and
`mamba_ssm/utils` (mamba_ssm 2.2-2.3), none of which needs a compiled extension."""

TRITON_AUTOTUNE_CACHE_ENV = "TRITON_CACHE_AUTOTUNING"
"""Set to "1" (unless already set) before the kernels are imported, so Triton keeps autotuning results on
disk beside the compiled kernels and a new process (a ZeroGPU worker, say) does not tune again."""

TRITON_FP32_ENV = "TRITON_F32_DEFAULT"
"""Triton's default `input_precision` for float32 `tl.dot` ("tf32" when unset; "ieee" is exact float32)."""

SMOKE_TEST_DEVICE = "cuda"
SMOKE_TEST_SHAPE = {"batch": 2, "length": 300, "heads": 16, "headdim": 64, "state": 128}
"""The released mixers' heads, head dim and state; 300 steps cross a 256-step chunk boundary."""
SMOKE_TEST_TOLERANCE = 1e-2
"""Largest error relative to the peak the smoke test accepts: TF32 lands near 1e-3."""


@dataclass(frozen=True)
class DeviceDefaults:
    """What runs best on one device: the scan backend, its chunk length and the separator's batch."""

    scan_backend: str
    scan_chunk: int
    batch_size: int


def register_mamba_ssm_backend() -> bool:
    """Register mamba_ssm's Triton SSD as the scan backend "mamba_ssm"; False if it can't (warned on CUDA).

    Needs CUDA and an importable mamba_ssm with triton, and the kernel must pass `smoke_test`. Safe to call
    on any machine and more than once: the import and the smoke test are tried once per process.
    """
    if MAMBA_SSM_BACKEND in available_scan_backends():
        return True
    scan = _load_triton_ssd()
    if scan is None:
        return False
    register_scan_backend(MAMBA_SSM_BACKEND, scan, MAMBA_SSM_CHUNK_SIZE)
    log.info("scan backend %r registered (mamba_ssm Triton SSD)", MAMBA_SSM_BACKEND)
    return True


def best_scan_backend(device: torch.device) -> str:
    """The fastest scan that runs on `device`: "mamba_ssm" on CUDA when it registers, "torch" otherwise."""
    if device.type == "cuda" and register_mamba_ssm_backend():
        return MAMBA_SSM_BACKEND
    return TORCH_BACKEND


def device_defaults(device: torch.device) -> DeviceDefaults:
    """The scan backend, its chunk and the batch size to use on `device` (registers the kernel on CUDA)."""
    backend = best_scan_backend(device)
    chunk = select_scan_backend(backend).chunk_size or TORCH_SCAN_CHUNK
    batch = CUDA_BATCH_SIZE if device.type == "cuda" else CPU_BATCH_SIZE
    return DeviceDefaults(scan_backend=backend, scan_chunk=chunk, batch_size=batch)


def use_device_defaults(model: nn.Module, device: torch.device) -> DeviceDefaults:
    """Set `device_defaults(device).scan_backend` on every Mamba2 in `model`; return the defaults."""
    defaults = device_defaults(device)
    use_scan_backend(model, defaults.scan_backend)
    return defaults


def use_scan_backend(model: nn.Module, name: str) -> int:
    """Make every Mamba2 in `model` scan with the registered backend `name`; returns how many were set.

    Raises the registry's KeyError for an unknown name, before changing anything.
    """
    select_scan_backend(name)
    mixers = [module for module in model.modules() if isinstance(module, Mamba2)]
    for mixer in mixers:
        mixer.scan_backend = name
    log.debug("scan backend %r set on %d Mamba2 mixers", name, len(mixers))
    return len(mixers)


def kernel_chunk_size(length: int, chunk_size: int = MAMBA_SSM_CHUNK_SIZE) -> int:
    """The chunk the kernel runs a `length`-step sequence with: the next power of two, within
    [MIN_KERNEL_CHUNK, chunk_size]. Chunks past the sequence would only compute on padding."""
    return max(MIN_KERNEL_CHUNK, min(chunk_size, 1 << max(0, length - 1).bit_length()))


def batch_pieces(batch: int, length: int, chunk_size: int) -> list[slice]:
    """Slices of the batch axis that keep `sequences × chunks` of each launch within CUDA_MAX_GRID_Y."""
    per_launch = max(1, CUDA_MAX_GRID_Y // math.ceil(length / chunk_size))
    return [slice(start, min(start + per_launch, batch)) for start in range(0, batch, per_launch)]


@contextlib.contextmanager
def triton_fp32_precision(precision: str) -> Iterator[None]:
    """Run float32 `tl.dot` in the kernels as `precision` ("ieee", "tf32" or "tf32x3") inside the block.

    Triton reads the setting when it picks the kernel variant to launch, so kernels compiled either way
    coexist in its cache.
    """
    previous = os.environ.get(TRITON_FP32_ENV)
    os.environ[TRITON_FP32_ENV] = precision
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(TRITON_FP32_ENV, None)
        else:
            os.environ[TRITON_FP32_ENV] = previous


def smoke_test(scan: ScanFn, device: torch.device) -> float:
    """Run `scan` once on random inputs of the released mixers' shapes, float32 and float16, on `device`.

    Returns the larger error relative to the peak against `ssd_scan` (float32); raises RuntimeError when an
    output is not finite or the error is over SMOKE_TEST_TOLERANCE. The first call compiles the kernels.
    """
    shape = SMOKE_TEST_SHAPE
    generator = torch.Generator(device=device).manual_seed(0)
    batch, length, heads = shape["batch"], shape["length"], shape["heads"]

    def randn(*size: int) -> Tensor:
        return torch.randn(*size, device=device, generator=generator)

    x, dt = randn(batch, length, heads, shape["headdim"]), randn(batch, length, heads)
    B, C = randn(batch, length, 1, shape["state"]), randn(batch, length, 1, shape["state"])
    A = -torch.linspace(1.0, 16.0, heads, device=device)  # the range of mamba_ssm's A init
    kwargs = {"D": torch.ones(heads, device=device), "dt_bias": torch.linspace(-6.9, -2.3, heads, device=device),
              "dt_softplus": True}  # dt_bias: softplus⁻¹ of Δ in [0.001, 0.1], mamba_ssm's dt init range
    expected = ssd_scan(x, dt, A, B, C, MAMBA_SSM_CHUNK_SIZE, **kwargs)
    peak = expected.abs().max()
    worst = 0.0
    for dtype in (torch.float32, torch.float16):
        cast = [t.to(dtype) for t in (x, dt, B, C)]
        actual = scan(cast[0], cast[1], A, cast[2], cast[3], MAMBA_SSM_CHUNK_SIZE, **kwargs).float()
        if not torch.isfinite(actual).all():
            raise RuntimeError(f"the scan returned non-finite values in {dtype}")
        error = ((actual - expected).abs().max() / peak).item()
        if error > SMOKE_TEST_TOLERANCE:
            raise RuntimeError(f"the scan is off by {error:.2e} of the peak in {dtype}")
        worst = max(worst, error)
    return worst


@functools.cache
def _load_triton_ssd() -> ScanFn | None:
    """mamba_ssm's scan with `ssd_scan`'s signature, smoke-tested; None (warned on CUDA) if it fails. Tried once."""
    if not torch.cuda.is_available():
        log.debug("mamba_ssm scan not loaded: CUDA is not available")
        return None
    try:
        scan = _as_ssd_scan(_import_triton_ssd().mamba_chunk_scan_combined)
        error = smoke_test(scan, torch.device(SMOKE_TEST_DEVICE))
    except Exception as error:  # anything: a missing package, a Triton compile or driver failure, a wrong result
        log.warning("mamba_ssm's Triton scan is not used, the PyTorch scan runs instead (docs/GPU.md): %s: %s",
                    type(error).__name__, error)
        return None
    log.debug("mamba_ssm scan passed the smoke test (error %.1e of the peak)", error)
    return scan


def _import_triton_ssd() -> types.ModuleType:
    """Import the Triton SSD module, through the package when it imports, else around its `__init__`."""
    if importlib.util.find_spec(MAMBA_SSM_PACKAGE) is None:
        raise ImportError("mamba_ssm is not installed")
    os.environ.setdefault(TRITON_AUTOTUNE_CACHE_ENV, "1")
    try:
        return importlib.import_module(TRITON_SSD_MODULE)
    except Exception as error:  # the package's __init__ imports far more than the scan needs
        log.debug("the mamba_ssm package does not import (%s); loading its Triton files alone", error)
        for name in [name for name in sys.modules if name.startswith(f"{MAMBA_SSM_PACKAGE}.")]:
            del sys.modules[name]  # half-imported submodules would stand in for the real ones
    return _import_skipping_package_init(TRITON_SSD_MODULE)


def _import_skipping_package_init(name: str) -> types.ModuleType:
    """Import submodule `name` of mamba_ssm with an empty stand-in for the package's `__init__`.

    The stand-in has the package's real search path, so `mamba_ssm.ops.triton.*` resolve to the installed
    files. It is taken out of `sys.modules` afterwards, so a later `import mamba_ssm` runs (and fails) as
    usual; the loaded submodules stay usable.
    """
    spec = importlib.util.find_spec(MAMBA_SSM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{MAMBA_SSM_PACKAGE} is not a package")
    stand_in = importlib.util.module_from_spec(spec)  # created, not executed
    sys.modules[MAMBA_SSM_PACKAGE] = stand_in
    try:
        return importlib.import_module(name)
    finally:
        if sys.modules.get(MAMBA_SSM_PACKAGE) is stand_in:
            del sys.modules[MAMBA_SSM_PACKAGE]


def _as_ssd_scan(kernel: ScanFn) -> ScanFn:
    """`kernel` with `ssd_scan`'s signature, a chunk fitted to the length and the batch split to fit the grid.

    Mixed dtypes are what mamba_ssm's own Mamba2 passes under autocast: x, dt, B, C in float16/bfloat16,
    A, D, dt_bias in float32; the kernels accumulate in float32 and return y in the dtype of x. Autocast is
    off inside, so no PyTorch op around the kernels runs in half precision.
    """

    def scan(
        x: Tensor,
        dt: Tensor,
        A: Tensor,
        B: Tensor,
        C: Tensor,
        chunk_size: int,
        D: Tensor | None = None,
        z: Tensor | None = None,
        dt_bias: Tensor | None = None,
        dt_softplus: bool = False,
        dt_limit: tuple[float, float] = NO_DT_LIMIT,
        initial_states: Tensor | None = None,
        return_final_states: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        chunk = kernel_chunk_size(x.shape[1], chunk_size)
        outputs = []
        with torch.autocast(x.device.type, enabled=False):
            for piece in batch_pieces(x.shape[0], x.shape[1], chunk):
                outputs.append(kernel(
                    x[piece],
                    dt[piece],
                    A,
                    B[piece],
                    C[piece],
                    chunk,
                    D=D,
                    z=None if z is None else z[piece],
                    dt_bias=dt_bias,
                    initial_states=None if initial_states is None else initial_states[piece],
                    dt_softplus=dt_softplus,
                    dt_limit=dt_limit,
                    return_final_states=return_final_states,
                ))
        if len(outputs) == 1:
            return outputs[0]
        if return_final_states:
            return torch.cat([y for y, _ in outputs]), torch.cat([state for _, state in outputs])
        return torch.cat(outputs)

    return scan
