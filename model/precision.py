"""Numeric precision of a separation: which one to run, and getting a model ready for it.

    precision = resolve_precision("auto", device)      # "bf16" on a CPU with bf16 hardware, "fp16" on CUDA, ...
    model = prepare_model(model, precision, device)     # CPU bf16: weights cast to bfloat16 once, in place
    with inference_autocast(precision, device):         # CUDA fp16/bf16: autocast; CPU: nothing to do
        stems = model.separate_waveform(waveform)

On a CPU, "bf16" is not autocast (which re-casts every weight on every call and leaves the element-wise work in
float32): the Linear/conv weights are held in bfloat16 so that oneDNN runs the products on the CPU's bf16 units
(AMX or AVX512-BF16), the Mamba2 mixers work in bfloat16 between their projections, and what accuracy needs
stays float32: the residual stream, the STFT/iSTFT and the masks, the norms' statistics and the scan's step
sizes, cumulative decay, `exp` and matmul accumulation. fp32 is untouched: the same code and numbers as before.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "PRECISIONS",
    "AUTO",
    "cpu_has_bf16",
    "resolve_precision",
    "prepare_model",
    "held_dtype",
    "inference_autocast",
    "TRAINING_PRECISIONS",
    "resolve_training_precision",
    "training_autocast",
]

log = logging.getLogger(__name__)

AUTO = "auto"
FP32, BF16, FP16 = "fp32", "bf16", "fp16"
PRECISIONS: dict[str, torch.dtype] = {FP32: torch.float32, BF16: torch.bfloat16, FP16: torch.float16}
"""Every precision by name, with the dtype its products run in."""

CUDA_AUTO_PRECISION = FP16
"""The official `inference.py`/`evaluate.py` run under `torch.cuda.amp.autocast()`: float16 (official-model.md §2.8)."""

CPUINFO = Path("/proc/cpuinfo")
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""/proc/cpuinfo flags of x86 bf16 matmul hardware (AVX512-BF16 dot products, AMX tiles)."""

CAST_MODULES = (nn.Linear, nn.Conv1d, nn.ConvTranspose1d)
"""Modules whose weights a CPU bf16 model holds in bfloat16; every other parameter (norm gains, the scan's
A_log, D, dt_bias) stays float32."""


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (and oneDNN can use it); emulated bf16 is slower than fp32."""
    if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        return False
    try:
        flags = {flag for line in CPUINFO.read_text().splitlines() if line.startswith("flags")
                 for flag in line.split(":", 1)[1].split()}
    except OSError:  # not Linux: trust oneDNN's own check on arm64/macOS
        return torch.backends.cpu.get_cpu_capability() not in ("DEFAULT", "NO AVX")
    return bool(flags & BF16_CPU_FLAGS)


def resolve_precision(name: str, device: torch.device | str) -> str:
    """The precision that `name` means on `device`: "auto" is bf16 on a CPU with bf16 hardware, fp16 on CUDA,
    else fp32. Raises ValueError for an unknown name or fp16 on a CPU (no fast CPU fp16 path)."""
    device = torch.device(device)
    if name == AUTO:
        if device.type == "cuda":
            return CUDA_AUTO_PRECISION
        return BF16 if device.type == "cpu" and cpu_has_bf16() else FP32
    if name not in PRECISIONS:
        raise ValueError(f"precision must be {AUTO!r} or one of {sorted(PRECISIONS)}: {name!r}")
    if name == FP16 and device.type != "cuda":
        raise ValueError(f"precision {name!r} needs a CUDA device; use 'bf16' or 'fp32' on {device.type}")
    if name == BF16 and device.type == "cpu" and not cpu_has_bf16():
        log.warning("this CPU has no bf16 hardware: bf16 runs emulated, slower than fp32")
    return name


def prepare_model(model: nn.Module, precision: str, device: torch.device | str) -> nn.Module:
    """Get `model` (already on `device`) ready to run in the resolved `precision`; returns it.

    CPU bf16 casts the Linear/conv weights to bfloat16 in place, once (no float32 copy is kept: reload the
    weights to go back). fp32, and fp16/bf16 on CUDA (autocast), leave the weights as they are. Raises
    ValueError when asked for fp32 on a model whose weights were already cast.
    """
    device = torch.device(device)
    cast = held_dtype(model)
    if precision == BF16 and device.type == "cpu":
        for module in model.modules():
            if isinstance(module, CAST_MODULES):
                module.to(torch.bfloat16)
        log.debug("weights held in bfloat16 for the CPU bf16 path")
    elif cast != torch.float32:
        raise ValueError(f"the weights are held in {cast}; reload them to run {precision} on {device.type}")
    return model


def held_dtype(model: nn.Module) -> torch.dtype:
    """The dtype the model's Linear/conv weights are held in (float32 unless `prepare_model` cast them)."""
    for module in model.modules():
        if isinstance(module, CAST_MODULES):
            return module.weight.dtype
    return torch.float32


def inference_autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The context a forward runs in: autocast for fp16/bf16 on CUDA, nothing otherwise (on a CPU the
    prepared weights carry the precision)."""
    device = torch.device(device)
    if device.type == "cuda" and precision != FP32:
        return torch.autocast("cuda", dtype=PRECISIONS[precision])
    return contextlib.nullcontext()


TRAINING_PRECISIONS = (AUTO, FP32, BF16)
"""What a training step can run in: bf16 autocast or plain float32 (fp16 would need a gradient scaler)."""


def resolve_training_precision(name: str, device: torch.device | str) -> str:
    """"auto" is bf16 on CUDA (the official `precision: bf16`) and on CPUs with bf16 hardware, else fp32.

    On a CPU without AMX bf16 pays off for the larger configs only (scripts/bench_train.py: 1.4x for the
    released one, 0.93x for the bundled demo model), so scripts/train.py lets the caller choose.
    """
    device = torch.device(device)
    if name not in TRAINING_PRECISIONS:
        raise ValueError(f"training precision must be one of {TRAINING_PRECISIONS}: {name!r}")
    if name == AUTO:
        return BF16 if device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16()) else FP32
    return name


def training_autocast(device: torch.device | str, precision: str = AUTO) -> contextlib.AbstractContextManager:
    """bf16 autocast around a training step's forward where `precision` resolves to bf16; float32 otherwise."""
    device = torch.device(device)
    enabled = resolve_training_precision(precision, device) == BF16
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)
