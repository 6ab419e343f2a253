"""Which scan runs where, and mamba_ssm's kernel behind its wrapper: fallback, smoke test, chunk, grid, precision.

The kernel itself needs CUDA; everything around it is tested here on a CPU with a stand-in mamba_ssm package
whose "kernel" is the PyTorch scan. The tests marked for CUDA run on a GPU machine (scripts/gpu_check.sh).
"""

from __future__ import annotations

import logging
import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from model import kernels, mamba2
from conftest import TINY_CONFIG
from model.bsmamba2 import BSMamba2
from model.mamba2 import TORCH_SCAN_CHUNK, Mamba2, register_scan_backend
from model.ssd import ssd_scan

MIXERS_PER_LAYER = 4  # (time, band) × (forward, backward)
FRAMES = 5
BANDS = len(TINY_CONFIG.freqs_per_bands)
TF32_TOLERANCE = 1e-2
IEEE_TOLERANCE = 1e-4
RELEASED_MIXER = {"heads": 16, "headdim": 64, "state": 128}
SMALL_SMOKE_SHAPE = {"batch": 2, "length": 40, "heads": 4, "headdim": 8, "state": 16}  # CPU-sized
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


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


def scan_inputs(batch: int, length: int, device: str = "cpu", seed: int = 0, **sizes: int) -> tuple:
    """Random scan arguments `(x, dt, A, B, C)` and keyword arguments, as the released mixers see them."""
    sizes = {**RELEASED_MIXER, **sizes}
    generator = torch.Generator(device=device).manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, device=device, generator=generator)

    heads = sizes["heads"]
    x, dt = randn(batch, length, heads, sizes["headdim"]), randn(batch, length, heads)
    B, C = randn(batch, length, 1, sizes["state"]), randn(batch, length, 1, sizes["state"])
    A = -torch.linspace(1.0, 16.0, heads, device=device)
    kwargs = {"D": torch.ones(heads, device=device), "dt_softplus": True,
              "dt_bias": torch.linspace(-6.9, -2.3, heads, device=device)}  # softplus⁻¹ of Δ in [0.001, 0.1]
    return (x, dt, A, B, C), kwargs


def peak_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual.float() - expected.float()).abs().max() / expected.float().abs().max()).item()


# --- choosing a backend ------------------------------------------------------------------------------------


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


# --- per-device defaults -------------------------------------------------------------------------------------


def test_cpu_defaults_are_the_measured_cpu_values():
    defaults = kernels.device_defaults(torch.device("cpu"))
    assert defaults == kernels.DeviceDefaults(scan_backend="torch", scan_chunk=TORCH_SCAN_CHUNK, batch_size=4)


def test_cuda_without_the_kernel_uses_the_torch_scan_at_the_official_batch(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(kernels, "MAMBA_SSM_PACKAGE", "no_such_mamba_ssm")
    defaults = kernels.device_defaults(torch.device("cuda"))
    assert defaults == kernels.DeviceDefaults("torch", TORCH_SCAN_CHUNK, kernels.CUDA_BATCH_SIZE)
    assert kernels.CUDA_BATCH_SIZE == 8  # the official inference's batch


def test_cuda_with_the_kernel_uses_it(fake_mamba_ssm, tiny_model: BSMamba2):
    defaults = kernels.use_device_defaults(tiny_model, torch.device("cuda"))
    assert defaults == kernels.DeviceDefaults("mamba_ssm", kernels.MAMBA_SSM_CHUNK_SIZE, 8)
    assert {m.scan_backend for m in tiny_model.modules() if isinstance(m, Mamba2)} == {"mamba_ssm"}


# --- loading mamba_ssm: the stand-in package ---------------------------------------------------------------

FAKE_PACKAGE_INIT = 'raise ImportError("No module named selective_scan_cuda")\n'
FAKE_SSD_COMBINED = textwrap.dedent(
    """
    import torch
    from mamba_ssm.ops.triton import ssd_helper
    from model.ssd import ssd_scan

    def mamba_chunk_scan_combined(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None,
                                  initial_states=None, seq_idx=None, dt_softplus=False,
                                  dt_limit=(0.0, float("inf")), return_final_states=False):
        ssd_helper.calls.append({"batch": x.shape[0], "length": x.shape[1], "chunk": chunk_size,
                                 "autocast": torch.is_autocast_enabled(x.device.type)})
        y = ssd_scan(x, dt, A, B, C, chunk_size, D=D, z=z, dt_bias=dt_bias, dt_softplus=dt_softplus,
                     dt_limit=dt_limit, initial_states=initial_states, return_final_states=return_final_states)
        return ssd_helper.corrupt(y)
    """
)
FAKE_HELPER = "calls = []\n\ndef corrupt(y):\n    return y\n"


def install_fake_mamba_ssm(root: Path, ssd_combined: str = FAKE_SSD_COMBINED) -> None:
    triton_dir = root / "mamba_ssm" / "ops" / "triton"
    triton_dir.mkdir(parents=True)
    (root / "mamba_ssm" / "__init__.py").write_text(FAKE_PACKAGE_INIT)
    (triton_dir / "ssd_helper.py").write_text(FAKE_HELPER)
    (triton_dir / "ssd_combined.py").write_text(ssd_combined)


@pytest.fixture
def fake_mamba_ssm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A stand-in mamba_ssm on a machine that claims CUDA: its `__init__` fails like a build without CUDA,
    its Triton SSD file works (it is the PyTorch scan), and the smoke test runs on the CPU."""
    install_fake_mamba_ssm(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(kernels, "SMOKE_TEST_DEVICE", "cpu")
    monkeypatch.setattr(kernels, "SMOKE_TEST_SHAPE", SMALL_SMOKE_SHAPE)
    monkeypatch.delenv(kernels.TRITON_AUTOTUNE_CACHE_ENV, raising=False)
    yield
    for name in [name for name in sys.modules if name == "mamba_ssm" or name.startswith("mamba_ssm.")]:
        del sys.modules[name]


def fake_helper():
    return sys.modules["mamba_ssm.ops.triton.ssd_helper"]


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


def test_autotune_results_are_cached_on_disk_once_the_kernels_load(fake_mamba_ssm):
    assert kernels.register_mamba_ssm_backend() is True
    assert os.environ[kernels.TRITON_AUTOTUNE_CACHE_ENV] == "1"


def test_the_kernel_is_smoke_tested_once_at_registration(fake_mamba_ssm):
    assert kernels.register_mamba_ssm_backend() is True
    smoke_calls = len(fake_helper().calls)
    assert smoke_calls == 2  # float32 and float16
    assert {call["length"] for call in fake_helper().calls} == {SMALL_SMOKE_SHAPE["length"]}
    assert kernels.register_mamba_ssm_backend() is True
    assert kernels.best_scan_backend(torch.device("cuda")) == kernels.MAMBA_SSM_BACKEND
    assert len(fake_helper().calls) == smoke_calls


@pytest.mark.parametrize(
    "broken_module",
    [
        "raise OSError('libcuda.so.1: cannot open shared object file')\n",
        "raise AttributeError(\"module 'triton' has no attribute 'language'\")\n",
        "def mamba_chunk_scan_combined(*args, **kwargs):\n    raise RuntimeError('PTXAS error: Internal')\n",
    ],
    ids=["driver-missing", "incompatible-triton", "compile-failure"],
)
def test_a_broken_kernel_falls_back_to_the_torch_scan_with_a_warning(
    broken_module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    install_fake_mamba_ssm(tmp_path, broken_module)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(kernels, "SMOKE_TEST_DEVICE", "cpu")
    monkeypatch.setattr(kernels, "SMOKE_TEST_SHAPE", SMALL_SMOKE_SHAPE)
    try:
        with caplog.at_level(logging.WARNING, logger=kernels.__name__):
            assert kernels.best_scan_backend(torch.device("cuda")) == kernels.TORCH_BACKEND
    finally:
        for name in [name for name in sys.modules if name.startswith("mamba_ssm")]:
            del sys.modules[name]
    assert kernels.MAMBA_SSM_BACKEND not in mamba2.available_scan_backends()
    assert "PyTorch scan runs instead" in caplog.text


@pytest.mark.parametrize("corruption", ["y * 1.1", "y + float('nan')"], ids=["wrong", "nan"])
def test_a_kernel_with_wrong_results_is_not_registered(
    corruption: str, fake_mamba_ssm, caplog: pytest.LogCaptureFixture
):
    kernels._import_triton_ssd()
    fake_helper().corrupt = eval(f"lambda y: {corruption}")  # noqa: S307 - a test's own expression
    with caplog.at_level(logging.WARNING, logger=kernels.__name__):
        assert kernels.register_mamba_ssm_backend() is False
    assert kernels.MAMBA_SSM_BACKEND not in mamba2.available_scan_backends()
    assert "PyTorch scan runs instead" in caplog.text


# --- the wrapper: chunk, grid, autocast ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "chunk"),
    [(62, 64), (64, 64), (65, 128), (300, 256), (801, 256), (5, 16), (1, 16)],
)
def test_the_kernel_chunk_is_fitted_to_the_length(length: int, chunk: int):
    assert kernels.kernel_chunk_size(length) == chunk


def test_band_sequences_reach_the_kernel_with_a_64_step_chunk(fake_mamba_ssm, tiny_model: BSMamba2):
    kernels.use_scan_backend(tiny_model, kernels.best_scan_backend(torch.device("cuda")))
    fake_helper().calls.clear()
    with torch.inference_mode():
        tiny_model(tiny_spec())
    chunks = {call["length"]: call["chunk"] for call in fake_helper().calls}
    assert chunks == {BANDS: 64, FRAMES: kernels.MIN_KERNEL_CHUNK}


@pytest.mark.parametrize("batch_size", [81, 82, 200])
def test_batch_pieces_keep_every_launch_within_the_cuda_grid(batch_size: int):
    sequences, length = batch_size * 801, BANDS  # the band path: one sequence per frame of each chunk
    chunk = kernels.kernel_chunk_size(length)
    pieces = kernels.batch_pieces(sequences, length, chunk)
    chunks_per_sequence = -(-length // chunk)
    assert all((p.stop - p.start) * chunks_per_sequence <= kernels.CUDA_MAX_GRID_Y for p in pieces)
    assert [i for p in pieces for i in range(p.start, p.stop)] == list(range(sequences))
    assert len(pieces) == (1 if batch_size < 82 else -(-sequences // kernels.CUDA_MAX_GRID_Y))


@pytest.mark.parametrize("final_states", [False, True])
def test_the_wrapper_splits_a_batch_past_the_grid_limit(
    fake_mamba_ssm, monkeypatch: pytest.MonkeyPatch, final_states: bool
):
    monkeypatch.setattr(kernels, "CUDA_MAX_GRID_Y", 6)
    scan = kernels._as_ssd_scan(kernels._import_triton_ssd().mamba_chunk_scan_combined)
    args, kwargs = scan_inputs(batch=7, length=40, heads=4, headdim=8, state=16)
    expected = ssd_scan(*args, 32, return_final_states=final_states, **kwargs)
    actual = scan(*args, 32, return_final_states=final_states, **kwargs)
    launches = fake_helper().calls
    assert [call["batch"] for call in launches] == [3, 3, 1]  # 3 sequences × 2 chunks of 32 ≤ 6
    for got, want in zip(actual if final_states else [actual], expected if final_states else [expected]):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_the_kernel_runs_with_autocast_off(fake_mamba_ssm):
    scan = kernels._as_ssd_scan(kernels._import_triton_ssd().mamba_chunk_scan_combined)
    args, kwargs = scan_inputs(batch=1, length=20, heads=4, headdim=8, state=16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scan(*args, 256, **kwargs)
    assert [call["autocast"] for call in fake_helper().calls] == [False]


def test_the_smoke_test_accepts_the_torch_scan_and_rejects_a_wrong_one(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(kernels, "SMOKE_TEST_SHAPE", SMALL_SMOKE_SHAPE)
    assert kernels.smoke_test(ssd_scan, torch.device("cpu")) < kernels.SMOKE_TEST_TOLERANCE
    with pytest.raises(RuntimeError, match="off by"):
        kernels.smoke_test(lambda *a, **k: ssd_scan(*a, **k) * 0.9, torch.device("cpu"))


def test_triton_fp32_precision_is_set_inside_and_restored_after(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(kernels.TRITON_FP32_ENV, "tf32")
    with kernels.triton_fp32_precision("ieee"):
        assert os.environ[kernels.TRITON_FP32_ENV] == "ieee"
    assert os.environ[kernels.TRITON_FP32_ENV] == "tf32"
    monkeypatch.delenv(kernels.TRITON_FP32_ENV)
    with kernels.triton_fp32_precision("ieee"):
        pass
    assert kernels.TRITON_FP32_ENV not in os.environ


# --- on CUDA: the real kernel ------------------------------------------------------------------------------


@pytest.fixture
def cuda_kernel():
    if not kernels.register_mamba_ssm_backend():
        pytest.skip("mamba_ssm's Triton scan is not installed (docs/GPU.md)")
    return mamba2.select_scan_backend(kernels.MAMBA_SSM_BACKEND).scan


@needs_cuda
@pytest.mark.parametrize("length", [62, 300, 801])  # bands, past one 256-chunk, frames of an 8-s chunk
def test_the_mamba_ssm_scan_matches_the_torch_scan_on_cuda(cuda_kernel, length: int):
    args, kwargs = scan_inputs(batch=2, length=length, device="cuda")
    expected = ssd_scan(*args, 64, **kwargs)
    # Triton's tl.dot runs float32 inputs as TF32 (10-bit mantissa): agreement to ~1e-3 of the peak, not 1e-6.
    assert peak_error(cuda_kernel(*args, 64, **kwargs), expected) < TF32_TOLERANCE
    with kernels.triton_fp32_precision("ieee"):
        assert peak_error(cuda_kernel(*args, 64, **kwargs), expected) < IEEE_TOLERANCE


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_the_mamba_ssm_scan_is_finite_in_half_precision(cuda_kernel, dtype: torch.dtype):
    (x, dt, A, B, C), kwargs = scan_inputs(batch=2, length=801, device="cuda")
    expected = ssd_scan(x, dt, A, B, C, 64, **kwargs)
    actual = cuda_kernel(x.to(dtype), dt.to(dtype), A, B.to(dtype), C.to(dtype), 64, **kwargs)
    assert actual.dtype == dtype and torch.isfinite(actual).all()
    assert peak_error(actual, expected) < 5e-2


@needs_cuda
def test_the_mamba_ssm_scan_runs_82_chunks_of_band_sequences(cuda_kernel):
    sequences = 82 * 801  # batch 82 of the band path: past the 65,535 grid rows in one launch
    (x, dt, A, B, C), kwargs = scan_inputs(batch=sequences, length=BANDS, device="cuda", headdim=16, state=16)
    half = [t.half() for t in (x, dt, B, C)]
    actual = cuda_kernel(half[0], half[1], A, half[2], half[3], 256, **kwargs)
    assert torch.isfinite(actual).all()
    for rows in (slice(0, 4), slice(sequences - 4, sequences)):
        expected = ssd_scan(x[rows], dt[rows], A, B[rows], C[rows], 64, **kwargs)
        assert peak_error(actual[rows], expected) < 5e-2
