"""Compiled Mamba2 layers (model.compile): same stems as eager, one graph for every block size, eager fallback."""

from __future__ import annotations

import dataclasses

import einops
import numpy as np
import pytest
from einops._backends import _type2backend as einops_backends
import torch
from torch._dynamo.utils import counters

from conftest import TEST_CHUNK_SECONDS, tiny_model, tiny_service
from model import compile as compiling
from model.bsmamba2 import MambaBlockLayer
from model.compile import compile_mamba_layers, compiler_available, is_compiled, uncompile_mamba_layers
from model.inference import separator as separator_module
from model.inference.separator import SeparationSettings, Separator
from model.stft import SAMPLE_RATE

SETTINGS = SeparationSettings(chunk_seconds=TEST_CHUNK_SECONDS, device="cpu", precision="fp32", batch_size=2)
COMPILED = dataclasses.replace(SETTINGS, compile=True)


def song(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((2, round(seconds * SAMPLE_RATE))) * 0.1).astype(np.float32)


@pytest.mark.skipif(not compiler_available(), reason="no C++ compiler for TorchInductor")
def test_compiled_layers_give_the_eager_stems_and_share_their_graphs():
    model = tiny_model()
    mixture = song(3.5)  # 4 chunks: a full batch of 2, then 2 more; the bands axis splits into blocks too
    eager = Separator(model, SETTINGS).separate(mixture)["vocals"]
    torch._dynamo.reset()
    counters.clear()
    einops_backends.clear()  # as in a fresh app: einops has not met a numpy array yet
    compiled = Separator(model, COMPILED)
    assert compiled.compiled and all(is_compiled(m) for m in model.modules() if isinstance(m, MambaBlockLayer))
    compiled.warm_up()
    graphs_after_warm_up = counters["stats"]["unique_graphs"]
    einops.rearrange(np.zeros((2, 3)), "a b -> b a")  # the app's plots do this between songs
    result = compiled.separate(mixture)["vocals"]
    # Float32 compiled kernels reorder sums: agreement to rounding, far beyond any audible difference.
    np.testing.assert_allclose(result, eager, atol=2e-5 * np.abs(eager).max())
    assert counters["stats"]["unique_graphs"] == graphs_after_warm_up  # the warm-up compiled what songs need
    assert graphs_after_warm_up <= 6  # (time, bands) x (batch 1, dynamic batch), not one per block size

    eager_again = Separator(model, SETTINGS)  # a later eager separator on the same model object undoes it
    assert not eager_again.compiled and not any(is_compiled(m) for m in model.modules())


def test_a_failing_compiled_model_falls_back_to_eager(monkeypatch):
    def broken_compile(model):
        for module in model.modules():
            if isinstance(module, MambaBlockLayer):
                module.forward = lambda u: (_ for _ in ()).throw(RuntimeError("no compiler after all"))

    monkeypatch.setattr(separator_module, "compiler_available", lambda: True)
    monkeypatch.setattr(separator_module, "compile_mamba_layers", broken_compile)
    model = tiny_model()
    mixture = song(1.5)
    expected = Separator(tiny_model(), SETTINGS).separate(mixture)["vocals"]
    separator = Separator(model, COMPILED)
    assert separator.compiled
    np.testing.assert_array_equal(separator.separate(mixture)["vocals"], expected)
    assert not separator.compiled


def test_compile_is_off_without_a_compiler_or_off_the_cpu(monkeypatch):
    monkeypatch.setattr(separator_module, "compiler_available", lambda: False)
    separator = Separator(tiny_model(), COMPILED)
    assert not separator.compiled
    separator.warm_up()  # nothing to warm up


def test_compiler_probe_reports_a_missing_compiler(monkeypatch):
    import torch._inductor.cpp_builder as builder

    def no_compiler():
        raise RuntimeError("Failed to find a working C++ compiler")

    monkeypatch.setattr(builder, "get_cpp_compiler", no_compiler)
    compiling.compiler_available.cache_clear()
    try:
        assert not compiler_available()
    finally:
        compiling.compiler_available.cache_clear()


def test_uncompile_restores_the_class_forward():
    model = tiny_model()
    assert compile_mamba_layers(model) == 2 * 2 * 1  # depth 1: time and band blocks, forward and backward
    uncompile_mamba_layers(model)
    layer = next(m for m in model.modules() if isinstance(m, MambaBlockLayer))
    assert layer.forward.__func__ is MambaBlockLayer.forward


def test_the_app_warms_up_only_when_asked(monkeypatch):
    warmed = []
    monkeypatch.setattr(Separator, "warm_up", lambda self: warmed.append(self.compiled))
    monkeypatch.setattr(separator_module, "compiler_available", lambda: True)
    monkeypatch.setattr(separator_module, "compile_mamba_layers", lambda model: None)
    assert tiny_service().warm_up() == 0.0 and warmed == []  # AppConfig() leaves compile off
    tiny_service(compile=True).warm_up()
    assert warmed == [True]
