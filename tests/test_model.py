"""BSMamba2 matches the official architecture key for key and reproduces the official outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_CONFIG
from model.bsmamba2 import BSMamba2, BSMamba2Config
from model.mamba2 import GatedRMSNorm, Mamba2, causal_depthwise_conv
from model.stft import istft, stft

KEYS_JSON = Path(__file__).resolve().parents[2] / "shared" / "spec" / "bsmamba2-official-keys.json"
FLOAT_TOLERANCE = 1e-5  # relative to the output peak; the fixture README expects about this for float32


def relative_error(actual: torch.Tensor, expected: np.ndarray) -> float:
    expected_t = torch.from_numpy(expected)
    return ((actual - expected_t).abs().max() / expected_t.abs().max()).item()


def test_released_config_has_the_official_keys_shapes_and_order():
    if not KEYS_JSON.is_file():
        pytest.skip(f"{KEYS_JSON} not found")
    official = json.loads(KEYS_JSON.read_text())
    with torch.device("meta"):
        model = BSMamba2(BSMamba2Config())
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == [(e["key"], e["shape"]) for e in official["keys"]]
    assert sum(p.numel() for p in model.parameters()) == official["total_parameters"] == 48_098_188


def test_mamba2_defaults_follow_mamba_ssm():
    mixer = Mamba2(256, expand=4)
    assert (mixer.d_inner, mixer.nheads, mixer.conv_dim) == (1024, 16, 1280)
    assert mixer.in_proj.weight.shape == (2320, 256) and mixer.in_proj.bias is None
    assert mixer.out_proj.bias is None
    A = torch.exp(mixer.A_log)
    assert torch.all((A >= 1) & (A <= 16))
    dt = F.softplus(mixer.dt_bias)
    assert torch.all((dt >= 1e-4) & (dt <= 0.1 + 1e-6))
    assert torch.equal(mixer.D, torch.ones(16))


def test_causal_conv_equals_conv1d():
    x = torch.randn(3, 20, 12)
    conv = torch.nn.Conv1d(12, 12, 4, groups=12, padding=3)
    expected = conv(x.transpose(1, 2))[..., :20].transpose(1, 2)
    torch.testing.assert_close(causal_depthwise_conv(x, conv.weight, conv.bias), expected)


def test_gated_norm_normalises_after_the_gate():
    norm = GatedRMSNorm(8, group_size=4)
    torch.nn.init.normal_(norm.weight)
    y, z = torch.randn(2, 8), torch.randn(2, 8)
    gated = (y * F.silu(z)).view(2, 2, 4)
    expected = (gated * torch.rsqrt(gated.square().mean(-1, keepdim=True) + 1e-5)).view(2, 8) * norm.weight
    torch.testing.assert_close(norm(y, z), expected)


def test_forward_shapes_for_stereo_and_mono():
    for stereo, channels in ((True, 2), (False, 1)):
        model = BSMamba2(BSMamba2Config(dim=16, depth=1, stereo=stereo, mamba_d_state=16, mamba_headdim=16)).eval()
        wave = torch.randn(2, channels, 44100 // 4)
        with torch.inference_mode():
            out = model(stft(wave))
            assert out.shape == (2, 1, channels, 1025, 1 + wave.shape[-1] // 441)
            assert model.separate_waveform(wave).shape == (2, 1, channels, wave.shape[-1])


def test_wrong_input_layout_is_refused():
    model = BSMamba2(TINY_CONFIG)
    with pytest.raises(ValueError, match="expected"):
        model(torch.zeros(1, 1, 1025, 10, dtype=torch.complex64))


def test_stft_pair_matches_the_official_featurizers(official_fixture):
    wave = torch.from_numpy(np.load(official_fixture / "input_waveform.npy"))
    expected = np.load(official_fixture / "input_stft.npy")
    assert relative_error(stft(wave[None]), expected) < 1e-6
    output_stft = torch.from_numpy(np.load(official_fixture / "output_stft.npy"))
    assert relative_error(istft(output_stft), np.load(official_fixture / "output_waveform.npy")) < 1e-6


def test_mixer_reproduces_the_official_unit_output(official_fixture, official_small_model):
    unit_input = torch.from_numpy(np.load(official_fixture / "unit_input.npy"))
    with torch.inference_mode():
        out = official_small_model.layers[0][0].forward_blocks[0].mixer(unit_input)
    assert relative_error(out, np.load(official_fixture / "unit_mixer_output.npy")) < FLOAT_TOLERANCE


def test_bidirectional_block_reproduces_the_official_unit_output(official_fixture, official_small_model):
    unit_input = torch.from_numpy(np.load(official_fixture / "unit_input.npy"))
    with torch.inference_mode():
        out = official_small_model.layers[0][0](unit_input)
    assert relative_error(out, np.load(official_fixture / "unit_mambablock_output.npy")) < FLOAT_TOLERANCE


def test_network_reproduces_the_official_output_stft(official_fixture, official_small_model):
    spec = torch.from_numpy(np.load(official_fixture / "input_stft.npy"))
    with torch.inference_mode():
        out = official_small_model(spec)
    expected = np.load(official_fixture / "output_stft.npy")
    assert out.shape == expected.shape
    assert np.abs(out.numpy() - expected).max() < 1e-4  # the fixture README's float32 tolerance
    assert relative_error(out, expected) < FLOAT_TOLERANCE


def test_block_splitting_gives_the_same_output():
    torch.manual_seed(0)
    model = BSMamba2(BSMamba2Config(dim=16, depth=1, mamba_d_state=16, mamba_headdim=16)).eval()
    spec = stft(torch.randn(2, 2, 44100 // 4))
    with torch.inference_mode():
        whole = model(spec)
        model.set_block_elements(1)  # one sequence per block
        blocks = model(spec)
    torch.testing.assert_close(blocks, whole, rtol=1e-5, atol=1e-6)
