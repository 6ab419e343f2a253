"""Which scan runs: mamba_ssm's kernel only on CUDA, the PyTorch scan elsewhere, and the registry is used."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch

from model import kernels, mamba2
from model.bsmamba2 import BSMamba2
from conftest import TINY_CONFIG
from model.mamba2 import Mamba2, register_scan_backend
from model.ssd import ssd_scan

MIXERS_PER_LAYER = 4  # (time, band) × (forward, backward)
FRAMES = 5
TF32_TOLERANCE = 1e-2


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch: pytest.MonkeyPatch):
    """Every test registers into a copy of the registry and starts with mamba_ssm not yet tried."""
    monkeypatch.setattr(mamba2, "_SCAN_BACKENDS", dict(mamba2._SCAN_BACKENDS))
    kernels._load_triton_ssd.cache_clear()
    yield
    kernels._load_triton_ssd.cache_clear()


@pytest.fixture
def tiny_model() -> BSMamba2:
    torch.manual_seed(0)
    return BSMamba2(TINY_CONFIG).eval()


def tiny_spec() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(1, 2, 1025, FRAMES, dtype=torch.complex64)


def test_mamba_ssm_is_not_registered_without_cuda(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert kernels.register_mamba_ssm_backend() is False
    assert kernels.MAMBA_SSM_BACKEND not in mamba2.available_scan_backends()
    assert "mamba_ssm" not in sys.modules


def test_best_backend_on_cpu_is_torch():
    assert kernels.best_scan_backend(torch.device("cpu")) == "torch"


def test_use_scan_backend_sets_every_mixer(tiny_model: BSMamba2):
    register_scan_backend("other", ssd_scan)
    assert kernels.use_scan_backend(tiny_model, "other") == MIXERS_PER_LAYER * TINY_CONFIG.depth
    assert {m.scan_backend for m in tiny_model.modules() if isinstance(m, Mamba2)} == {"other"}


def test_use_scan_backend_rejects_an_unknown_name_and_changes_nothing(tiny_model: BSMamba2):
    with pytest.raises(KeyError, match="unknown scan backend"):
        kernels.use_scan_backend(tiny_model, "no-such-backend")
    assert {m.scan_backend for m in tiny_model.modules() if isinstance(m, Mamba2)} == {"torch"}


def test_the_model_scans_with_the_registered_backend(tiny_model: BSMamba2):
    calls: list[int] = []

    def counting_scan(*args, **kwargs):
        calls.append(1)
        return ssd_scan(*args, **kwargs)

    register_scan_backend("counting", counting_scan, chunk_size=8)
    spec = tiny_spec()
    with torch.inference_mode():
        expected = tiny_model(spec)
        kernels.use_scan_backend(tiny_model, "counting")
        actual = tiny_model(spec)
    assert len(calls) == MIXERS_PER_LAYER * TINY_CONFIG.depth
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


FAKE_PACKAGE_INIT = 'raise ImportError("No module named selective_scan_cuda")\n'
FAKE_SSD_COMBINED = textwrap.dedent(
    """
    from mamba_ssm.ops.triton.ssd_helper import chunk_sizes_seen
    from model.ssd import ssd_scan

    def mamba_chunk_scan_combined(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None,
                                  initial_states=None, seq_idx=None, dt_softplus=False,
                                  dt_limit=(0.0, float("inf")), return_final_states=False):
        chunk_sizes_seen.append(chunk_size)
        return ssd_scan(x, dt, A, B, C, chunk_size, D=D, z=z, dt_bias=dt_bias, dt_softplus=dt_softplus,
                        dt_limit=dt_limit, initial_states=initial_states,
                        return_final_states=return_final_states)
    """
)


@pytest.fixture
def fake_mamba_ssm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A stand-in mamba_ssm: its `__init__` fails like a build without CUDA, its Triton SSD file works."""
    triton_dir = tmp_path / "mamba_ssm" / "ops" / "triton"
    triton_dir.mkdir(parents=True)
    (tmp_path / "mamba_ssm" / "__init__.py").write_text(FAKE_PACKAGE_INIT)
    (triton_dir / "ssd_helper.py").write_text("chunk_sizes_seen = []\n")
    (triton_dir / "ssd_combined.py").write_text(FAKE_SSD_COMBINED)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    yield
    for name in [name for name in sys.modules if name == "mamba_ssm" or name.startswith("mamba_ssm.")]:
        del sys.modules[name]


def test_the_triton_ssd_loads_without_the_package_init(fake_mamba_ssm, tiny_model: BSMamba2):
    assert kernels.register_mamba_ssm_backend() is True
    assert "mamba_ssm" not in sys.modules  # the stand-in package is gone, a real import would still fail
    assert kernels.best_scan_backend(torch.device("cuda")) == kernels.MAMBA_SSM_BACKEND
    spec = tiny_spec()
    with torch.inference_mode():
        expected = tiny_model(spec)
        kernels.use_scan_backend(tiny_model, kernels.MAMBA_SSM_BACKEND)
        actual = tiny_model(spec)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)
    seen = sys.modules["mamba_ssm.ops.triton.ssd_helper"].chunk_sizes_seen
    assert seen and set(seen) == {kernels.MAMBA_SSM_CHUNK_SIZE}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("length", [62, 300, 801])  # bands, past one 256-chunk, frames of an 8-s chunk
def test_the_mamba_ssm_scan_matches_the_torch_scan_on_cuda(length: int):
    if not kernels.register_mamba_ssm_backend():
        pytest.skip("mamba_ssm's Triton scan is not installed (docs/GPU.md)")
    fast = mamba2.select_scan_backend(kernels.MAMBA_SSM_BACKEND).scan
    generator = torch.Generator(device="cuda").manual_seed(0)
    batch, heads, headdim, state = 2, 16, 64, 128  # the released model's mixers

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, device="cuda", generator=generator)

    x, dt = randn(batch, length, heads, headdim), randn(batch, length, heads)
    B, C = randn(batch, length, 1, state), randn(batch, length, 1, state)
    A = -torch.linspace(1.0, 16.0, heads, device="cuda")
    D = torch.ones(heads, device="cuda")
    dt_bias = torch.linspace(-6.9, -2.3, heads, device="cuda")  # softplus⁻¹ of Δ in [0.001, 0.1]
    kwargs = {"D": D, "dt_bias": dt_bias, "dt_softplus": True}
    expected = ssd_scan(x, dt, A, B, C, 64, **kwargs)
    actual = fast(x, dt, A, B, C, 64, **kwargs)
    # Triton's tl.dot runs float32 inputs as TF32 (10-bit mantissa): agreement to ~1e-3 of the peak, not 1e-6.
    assert ((actual - expected).abs().max() / expected.abs().max()).item() < TF32_TOLERANCE
