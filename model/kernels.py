"""Optional CUDA kernels for the Mamba2 scan, and choosing which scan a model runs.

mamba_ssm's Triton SSD (`mamba_chunk_scan_combined`) computes what `model.ssd.ssd_scan` computes, so it
plugs into the scan registry of `model.mamba2` as the backend "mamba_ssm". It is only ever imported on a
machine with CUDA, and only the Triton files are needed: when the package's `__init__` cannot be imported (it
loads the compiled `selective_scan_cuda`, which a source install without a CUDA build lacks), the Triton SSD
files are loaded without running that `__init__`. Mamba2's depthwise conv stays ours, so causal-conv1d is not
needed either.

    model = load_model().model
    use_scan_backend(model, best_scan_backend(device))   # "mamba_ssm" on CUDA when it imports, else "torch"
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import sys
import types

import torch
from torch import Tensor, nn

from model.mamba2 import Mamba2, ScanFn, available_scan_backends, register_scan_backend, select_scan_backend
from model.ssd import NO_DT_LIMIT

__all__ = [
    "MAMBA_SSM_BACKEND",
    "TORCH_BACKEND",
    "best_scan_backend",
    "register_mamba_ssm_backend",
    "use_scan_backend",
]

log = logging.getLogger(__name__)

TORCH_BACKEND = "torch"
MAMBA_SSM_BACKEND = "mamba_ssm"

MAMBA_SSM_CHUNK_SIZE = 256
"""mamba_ssm's `Mamba2(chunk_size=256)` default, the size its Triton kernels are tuned and tested at."""

MAMBA_SSM_PACKAGE = "mamba_ssm"
TRITON_SSD_MODULE = "mamba_ssm.ops.triton.ssd_combined"
"""Imports only torch, triton, einops, packaging and sibling files under `mamba_ssm/ops/triton` and
`mamba_ssm/utils` (mamba_ssm 2.2-2.3), none of which needs a compiled extension."""


def register_mamba_ssm_backend() -> bool:
    """Register mamba_ssm's Triton SSD as the scan backend "mamba_ssm"; False (logged at debug) if it can't.

    Needs CUDA and an importable mamba_ssm with triton. Safe to call on any machine and more than once.
    """
    if MAMBA_SSM_BACKEND in available_scan_backends():
        return True
    kernel = _load_triton_ssd()
    if kernel is None:
        return False
    register_scan_backend(MAMBA_SSM_BACKEND, _as_ssd_scan(kernel), MAMBA_SSM_CHUNK_SIZE)
    log.info("scan backend %r registered (mamba_ssm Triton SSD)", MAMBA_SSM_BACKEND)
    return True


def best_scan_backend(device: torch.device) -> str:
    """The fastest scan that runs on `device`: "mamba_ssm" on CUDA when it registers, "torch" otherwise."""
    if device.type == "cuda" and register_mamba_ssm_backend():
        return MAMBA_SSM_BACKEND
    return TORCH_BACKEND


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


@functools.cache
def _load_triton_ssd() -> ScanFn | None:
    """mamba_ssm's `mamba_chunk_scan_combined`, or None (with the reason at debug level). Tried once."""
    if not torch.cuda.is_available():
        log.debug("mamba_ssm scan not loaded: CUDA is not available")
        return None
    try:
        module = _import_triton_ssd()
    except (ImportError, RuntimeError) as error:  # RuntimeError: triton failing to reach the CUDA driver
        log.debug("mamba_ssm scan not loaded: %s: %s", type(error).__name__, error)
        return None
    return module.mamba_chunk_scan_combined


def _import_triton_ssd() -> types.ModuleType:
    """Import the Triton SSD module, through the package when it imports, else around its `__init__`."""
    if importlib.util.find_spec(MAMBA_SSM_PACKAGE) is None:
        raise ImportError("mamba_ssm is not installed (see docs/GPU.md)")
    try:
        return importlib.import_module(TRITON_SSD_MODULE)
    except ImportError as error:
        log.debug("the mamba_ssm package does not import (%s); loading its Triton files alone", error)
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
    """`kernel` with `ssd_scan`'s signature (the registry hands it the kernels' tuned chunk size, 256).

    Mixed dtypes are what mamba_ssm's own Mamba2 passes under autocast: x, dt, B, C in float16/bfloat16,
    A, D, dt_bias in float32; the kernels accumulate in float32 and return y in the dtype of x.
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
        return kernel(
            x,
            dt,
            A,
            B,
            C,
            chunk_size,
            D=D,
            z=z,
            dt_bias=dt_bias,
            initial_states=initial_states,
            dt_softplus=dt_softplus,
            dt_limit=dt_limit,
            return_final_states=return_final_states,
        )

    return scan
