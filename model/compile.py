"""Compiling the Mamba2 layers for CPU inference with TorchInductor: fused, vectorised C++ for the element-wise work.

    if compiler_available():
        compile_mamba_layers(model)      # every pre-norm + Mamba2 mixer; the first calls compile (seconds)
    ...
    uncompile_mamba_layers(model)        # back to eager PyTorch, same weights

On a CPU the mixers spend more time in element-wise passes (the scan's decay and mask, `exp`, the gated norm,
the causal conv's shifted adds, copies between layouts) than in their matrix products; Inductor fuses those
passes into a few loops. Only the repeated layer (`MambaBlockLayer`: RMSNorm then Mamba2) is compiled, never
the whole network: the 62 per-band heads unroll into a graph that takes tens of minutes to compile. All layers
share one compiled graph per sequence length (time: frames of a chunk, bands: 62), with the batch axis dynamic,
so a song of any length compiles two or three graphs once per process; Inductor's on-disk cache shortens the
next process's compile. Needs a C++ compiler at run time; without one everything stays eager.
Results agree with eager to rounding (tests/test_compile.py).
"""

from __future__ import annotations

import functools
import logging

import einops
import numpy as np
import torch
from torch import Tensor, nn

from model.bsmamba2 import MambaBlockLayer

__all__ = ["compiler_available", "compile_mamba_layers", "uncompile_mamba_layers", "is_compiled"]

log = logging.getLogger(__name__)


@functools.cache
def compiler_available() -> bool:
    """Whether TorchInductor finds the C++ compiler it builds CPU kernels with."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception as error:  # no compiler on the PATH, or an Inductor that cannot probe it
        log.info("no C++ compiler for TorchInductor (%s): the model runs eager", error)
        return False
    return True


def compile_mamba_layers(model: nn.Module) -> int:
    """Compile every `MambaBlockLayer` of `model` in place (idempotent); returns how many there are.

    The compiled forward is bound to its layer: uncompile before `copy.deepcopy`, or the copy runs the
    original's weights."""
    _register_einops_backends()
    layers = [module for module in model.modules() if isinstance(module, MambaBlockLayer)]
    for layer in layers:
        if not is_compiled(layer):
            layer.forward = _dynamic_batch(torch.compile(layer.forward, dynamic=False))
    return len(layers)


def uncompile_mamba_layers(model: nn.Module) -> None:
    """Undo `compile_mamba_layers`: the layers run eager again."""
    for module in model.modules():
        if isinstance(module, MambaBlockLayer) and is_compiled(module):
            del module.forward


def is_compiled(layer: nn.Module) -> bool:
    """Whether `compile_mamba_layers` replaced this layer's forward."""
    return "forward" in vars(layer)


def _register_einops_backends() -> None:
    """Have einops register its numpy backend now. Compiled graphs guard on the number of einops backends
    registered when they were traced; the first `rearrange` of a numpy array elsewhere in the app (plots,
    the voice detector) would otherwise register one mid-song and make every graph compile again."""
    einops.rearrange(np.zeros((1, 1)), "a b -> b a")


def _dynamic_batch(compiled):
    """Mark the batch axis dynamic before each call, so every block size shares one graph; the sequence
    length and the width stay static (fully dynamic shapes compile slower code). The input is made
    contiguous first: the dual-path rearranges hand over strided views whose strides change with the number
    of chunks in a batch, and each new layout would compile again."""

    def forward(u: Tensor) -> Tensor:
        u = u.contiguous()
        torch._dynamo.maybe_mark_dynamic(u, 0)
        return compiled(u)

    return forward
