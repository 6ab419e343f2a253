"""Which weights a model holds, as a short hash that survives the CPU fast path's in-place bf16 cast.

A with-stem voice detector learns the habits of one separation model's stems (how much it leaks, where), so
it records the fingerprint of that model's weights, and the pipeline uses it only with the same weights.
Every floating-point tensor is hashed as bfloat16: `model.precision.prepare_model` casts Linear/conv weights
to bfloat16 in place on the CPU, and bfloat16 of bfloat16 is itself, so the fingerprint is the same before
and after that cast, on any device.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

FINGERPRINT_HEX_DIGITS = 16


def weights_fingerprint(model: nn.Module) -> str:
    """First 16 hex digits of the SHA-256 of the state dict (names, shapes, values rounded to bfloat16)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.to(torch.bfloat16).view(torch.int16)
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()[:FINGERPRINT_HEX_DIGITS]


__all__ = ["weights_fingerprint"]
