"""The CPU bf16 fast path: choosing a precision, preparing a model for it, and agreeing with fp32."""

from __future__ import annotations

import copy

import pytest
import torch

from model import precision
from model.bsmamba2 import BSMamba2, BSMamba2Config
from model.precision import (
    cpu_has_bf16,
    prepare_model,
    resolve_precision,
    resolve_training_precision,
    training_autocast,
)
from model.stft import stft

SMALL_CONFIG = BSMamba2Config(dim=32, depth=2, mamba_d_state=16, mamba_headdim=16)
MIN_AGREEMENT_DB = 35.0  # issue 10's accuracy target for the fast path against fp32


def agreement_db(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    reference, estimate = torch.view_as_real(reference).double(), torch.view_as_real(estimate).double()
    return (10 * torch.log10(reference.square().sum() / (reference - estimate).square().sum())).item()


@pytest.fixture
def cpuinfo(tmp_path, monkeypatch):
    """Write a fake /proc/cpuinfo with the given flags and return a fresh detection."""

    def with_flags(flags: str) -> bool:
        path = tmp_path / "cpuinfo"
        path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 avx2 {flags}\n")
        monkeypatch.setattr(precision, "CPUINFO", path)
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
        cpu_has_bf16.cache_clear()
        return cpu_has_bf16()

    yield with_flags
    cpu_has_bf16.cache_clear()


def test_bf16_hardware_is_read_from_the_cpu_flags(cpuinfo):
    assert cpuinfo("avx512f avx512_bf16")
    assert cpuinfo("amx_tile amx_bf16")
    assert not cpuinfo("avx512f avx512_vnni")


def test_auto_is_bf16_on_a_bf16_cpu_fp16_on_cuda(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("auto", "cuda") == "fp16"
    assert resolve_precision("fp32", "cpu") == "fp32"


def test_auto_falls_back_to_fp32_on_a_cpu_without_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"  # still runs when asked for, emulated


def test_unknown_or_cuda_only_precisions_are_refused():
    with pytest.raises(ValueError, match="one of"):
        resolve_precision("int4", "cpu")
    with pytest.raises(ValueError, match="CUDA"):
        resolve_precision("fp16", "cpu")


def test_prepare_holds_projection_weights_in_bf16_and_scan_parameters_in_fp32():
    model = prepare_model(BSMamba2(SMALL_CONFIG).eval(), "bf16", "cpu")
    mixer = model.layers[0][0].forward_blocks[0].mixer
    assert mixer.in_proj.weight.dtype == mixer.conv1d.weight.dtype == torch.bfloat16
    assert model.layers[0][0].linear.weight.dtype == torch.bfloat16
    assert mixer.A_log.dtype == mixer.dt_bias.dtype == mixer.D.dtype == mixer.norm.weight.dtype == torch.float32
    with pytest.raises(ValueError, match="reload"):
        prepare_model(model, "fp32", "cpu")


def test_fp32_leaves_the_model_untouched():
    model = BSMamba2(SMALL_CONFIG).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prepare_model(model, "fp32", "cpu")
    after = model.state_dict()
    assert all(after[k].dtype == torch.float32 and torch.equal(after[k], v) for k, v in before.items())


def test_bf16_path_agrees_with_fp32():
    torch.manual_seed(0)
    model = BSMamba2(SMALL_CONFIG).eval()
    spec = stft(torch.randn(1, 2, 44100) * 0.1)
    with torch.inference_mode():
        reference = model(spec)
        fast = prepare_model(copy.deepcopy(model), "bf16", "cpu")(spec)
    assert fast.dtype == reference.dtype == torch.complex64
    assert agreement_db(reference, fast) > MIN_AGREEMENT_DB


def test_training_autocast_is_bf16_only_where_the_hardware_has_it(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    with training_autocast("cpu"):
        assert not torch.is_autocast_enabled("cpu")
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    with training_autocast("cpu"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_training_precision_can_be_chosen_whatever_the_hardware(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    with training_autocast("cpu", "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    with training_autocast("cpu", "bf16"):
        assert torch.is_autocast_enabled("cpu")
    assert resolve_training_precision("auto", "cuda") == "bf16"
    with pytest.raises(ValueError, match="training precision"):
        resolve_training_precision("fp16", "cpu")
