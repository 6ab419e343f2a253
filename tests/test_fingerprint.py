"""Which weights a model holds: the key that ties a with-stem voice detector to its separation model."""

from __future__ import annotations

import torch

from conftest import tiny_model
from model.precision import prepare_model
from model.weights.fingerprint import weights_fingerprint


def test_the_fingerprint_survives_the_cpu_fast_paths_bf16_cast() -> None:
    model = tiny_model()
    before = weights_fingerprint(model)
    prepare_model(model, "bf16", "cpu")
    assert weights_fingerprint(model) == before


def test_other_weights_give_another_fingerprint() -> None:
    model = tiny_model()
    before = weights_fingerprint(model)
    with torch.no_grad():
        next(model.parameters()).mul_(1.5)
    assert weights_fingerprint(model) != before
