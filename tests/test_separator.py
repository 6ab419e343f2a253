"""The separation engine: chunking, stitching, the official separator, and the sparse-region gate."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from model import precision
from model.bsmamba2 import BSMamba2
from conftest import TINY_CONFIG
from utils.cleanup import GateSettings, apply_sparse_gate
from model.inference.separator import (
    Progress,
    SeparationSettings,
    Separator,
    chunk_starts,
    chunk_weights,
    padded_length,
)
from model.precision import held_dtype
from model.stft import SAMPLE_RATE
from utils.activity import detect_vocal_activity

SHORT_CHUNK_S = 0.25  # short chunks keep the tiny real model fast; the logic does not depend on the length
STFT_ROUND_TRIP_ATOL = 1e-5  # float32 STFT → iSTFT of a signal peaking near 1
FIXTURE_ATOL = 1e-4  # fixture README: a float32 reimplementation matches within about 1e-4 absolute


class IdentityModel(BSMamba2):
    """Mask = 1: returns the mixture STFT as the vocals."""

    def forward(self, spec: Tensor) -> Tensor:
        return spec[:, None]


class ChunkGainModel(BSMamba2):
    """Scales each chunk by a constant growing with the chunk's energy: chunks disagree at their borders."""

    def forward(self, spec: Tensor) -> Tensor:
        energy = spec.abs().square().mean(dim=(1, 2, 3), keepdim=True)
        return (spec * (1.0 + energy.sqrt()))[:, None]


def _noise(num_samples: int, seed: int = 0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal((2, num_samples))).astype(np.float32)


def _separate(model: BSMamba2, mixture: np.ndarray, **settings) -> dict[str, np.ndarray]:
    return Separator(model, SeparationSettings(device="cpu", precision="fp32", **settings)).separate(mixture)


@pytest.fixture
def identity() -> IdentityModel:
    """Fresh per test: a Separator in bf16 casts its model's weights in place."""
    return IdentityModel(TINY_CONFIG)


@pytest.fixture(scope="module")
def tiny() -> BSMamba2:
    torch.manual_seed(0)
    return BSMamba2(TINY_CONFIG)


# --- chunk layout ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_samples", "expected"),
    [(3 * 44100, 8 * 44100), (8 * 44100, 16 * 44100), (10 * 44100, 16 * 44100), (1, 8 * 44100)],
)
def test_padding_follows_the_official_formula(num_samples: int, expected: int) -> None:
    assert padded_length(num_samples, 8 * 44100, 8 * 44100) == expected


def test_chunks_made_only_of_padding_are_skipped() -> None:
    assert chunk_starts(16, chunk=8, hop=8) == [0, 8]


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.75])
def test_chunk_weights_sum_to_one_everywhere(overlap: float) -> None:
    settings = SeparationSettings(chunk_seconds=0.1, overlap=overlap)
    chunk, hop, num_samples = settings.chunk_samples, settings.hop_samples, 12345
    starts = chunk_starts(num_samples, chunk, hop)
    total = np.zeros(starts[-1] + chunk)
    for index, start in enumerate(starts):
        total[start : start + chunk] += chunk_weights(index, len(starts), chunk, hop)
    np.testing.assert_allclose(total[:num_samples], 1.0, atol=1e-6)


# --- identity model: the engine returns the input ------------------------------------------------------


@pytest.mark.parametrize("num_samples", [12345, 3 * 44100, 8 * 44100, 2 * 8 * 44100, 8 * 44100 + 1])
def test_identity_model_returns_the_input_with_official_chunks(
    identity: IdentityModel, num_samples: int
) -> None:
    mixture = _noise(num_samples)
    stems = _separate(identity, mixture)
    assert stems["vocals"].shape == mixture.shape and stems["vocals"].dtype == np.float32
    np.testing.assert_allclose(stems["vocals"], mixture, atol=STFT_ROUND_TRIP_ATOL)


@pytest.mark.parametrize("overlap", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("num_samples", [5000, 44100, 44100 * 2 + 17])
def test_identity_model_returns_the_input_with_overlap(
    identity: IdentityModel, overlap: float, num_samples: int
) -> None:
    mixture = _noise(num_samples)
    stems = _separate(identity, mixture, chunk_seconds=SHORT_CHUNK_S, overlap=overlap)
    np.testing.assert_allclose(stems["vocals"], mixture, atol=STFT_ROUND_TRIP_ATOL)


def test_accompaniment_is_mixture_minus_vocals(tiny: BSMamba2) -> None:
    mixture = _noise(30000)
    stems = _separate(tiny, mixture, chunk_seconds=SHORT_CHUNK_S)
    np.testing.assert_array_equal(stems["accompaniment"], mixture - stems["vocals"])


def test_batch_size_does_not_change_results(tiny: BSMamba2) -> None:
    mixture = _noise(round(2.5 * SHORT_CHUNK_S * SAMPLE_RATE))  # 3 chunks: batches of 1+1+1 and of 2+1
    one = _separate(tiny, mixture, chunk_seconds=SHORT_CHUNK_S, batch_size=1)["vocals"]
    two = _separate(tiny, mixture, chunk_seconds=SHORT_CHUNK_S, batch_size=2)["vocals"]
    np.testing.assert_allclose(two, one, atol=1e-5)


def _border_jump(output: np.ndarray, settings: SeparationSettings) -> float:
    """Largest ratio, over chunk starts and ends, of the step across the border to the largest one near it."""
    chunk, hop, num_samples = settings.chunk_samples, settings.hop_samples, output.shape[1]
    steps = np.abs(np.diff(output, axis=1)).max(axis=0)  # steps[i] = output[i + 1] − output[i]
    borders = {edge for start in chunk_starts(num_samples, chunk, hop) for edge in (start, start + chunk)}
    ratios = []
    for border in sorted(b for b in borders if 50 < b < num_samples - 50):
        near = np.concatenate([steps[border - 50 : border - 2], steps[border + 1 : border + 50]])
        ratios.append(steps[border - 2 : border + 1].max() / near.max())
    return max(ratios)


def test_overlap_removes_the_jump_at_chunk_borders() -> None:
    """Each chunk is scaled by its own gain: plain chunks step at every border, cross-faded ones do not."""
    model = ChunkGainModel(TINY_CONFIG)
    ramp = np.linspace(0.05, 0.9, round(2.2 * SAMPLE_RATE), dtype=np.float32)
    mixture = np.stack([ramp, ramp])
    plain, faded = SeparationSettings(chunk_seconds=0.5), SeparationSettings(chunk_seconds=0.5, overlap=0.5)
    assert _border_jump(_separate(model, mixture, chunk_seconds=0.5)["vocals"], plain) > 100
    assert _border_jump(_separate(model, mixture, chunk_seconds=0.5, overlap=0.5)["vocals"], faded) < 1.5


def test_progress_counts_up_to_the_total(identity: IdentityModel) -> None:
    reports: list[Progress] = []
    settings = SeparationSettings(chunk_seconds=SHORT_CHUNK_S, batch_size=2, device="cpu")
    separator = Separator(identity, settings)
    separator.separate(_noise(44101), progress=reports.append)  # 4 chunks and 1 sample: 5 chunks
    assert [report.chunks_done for report in reports] == [2, 4, 5]
    assert {report.chunks_total for report in reports} == {5}
    assert reports[-1].fraction == 1.0


# --- input validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mixture",
    [
        np.zeros((2, 1000), dtype=np.float64),
        np.zeros((1, 1000), dtype=np.float32),
        np.zeros((2, 0), dtype=np.float32),
        np.zeros(1000, dtype=np.float32),
        np.full((2, 1000), np.nan, dtype=np.float32),
    ],
    ids=["float64", "mono", "empty", "1-d", "nan"],
)
def test_invalid_mixture_raises_value_error(identity: IdentityModel, mixture: np.ndarray) -> None:
    with pytest.raises(ValueError):
        Separator(identity, SeparationSettings(device="cpu")).separate(mixture)


@pytest.mark.parametrize(
    "settings",
    [
        dict(overlap=1.0),
        dict(overlap=-0.1),
        dict(batch_size=0),
        dict(chunk_seconds=0.0),
        dict(precision="int8"),
    ],
)
def test_invalid_settings_raise_value_error(settings: dict) -> None:
    with pytest.raises(ValueError):
        SeparationSettings(**settings)


def test_fp32_asked_for_runs_in_fp32(identity: IdentityModel) -> None:
    assert Separator(identity, SeparationSettings(device="cpu", precision="fp32")).precision == "fp32"


@pytest.mark.parametrize(("has_bf16", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_is_bf16_only_on_a_cpu_with_bf16_hardware(
    monkeypatch: pytest.MonkeyPatch, has_bf16: bool, expected: str
) -> None:
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: has_bf16)
    separator = Separator(IdentityModel(TINY_CONFIG), SeparationSettings(device="cpu"))
    assert separator.precision == expected
    assert held_dtype(separator.model) == (torch.bfloat16 if has_bf16 else torch.float32)


# --- the official separator ---------------------------------------------------------------------------


@pytest.mark.slow
def test_reproduces_the_official_separator_fixture(official_fixture: Path, official_small_model) -> None:
    mixture = np.load(official_fixture / "input_waveform.npy")
    expected = np.load(official_fixture / "separator_output.npy")[0]
    vocals = _separate(official_small_model, mixture)["vocals"]
    error = float(np.abs(vocals - expected).max())
    print(f"official separator fixture: max abs error {error:.3g} (peak {np.abs(expected).max():.3g})")
    assert error <= FIXTURE_ATOL


# --- sparse-region gate -------------------------------------------------------------------------------

GATE_RATE = 8000
PHRASE = (1.0, 2.0)  # seconds


@pytest.fixture(scope="module")
def gated_case() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], GateSettings]:
    """Vocals and accompaniment of 3 s at 8 kHz, one phrase at 1–2 s, gated by 30 dB with 50 ms fades."""
    num_samples = 3 * GATE_RATE
    rng = np.random.default_rng(1)
    stems = {
        "vocals": (0.1 * rng.standard_normal((2, num_samples))).astype(np.float32),
        "accompaniment": (0.3 * rng.standard_normal((2, num_samples))).astype(np.float32),
    }
    activity = dataclasses.replace(detect_vocal_activity(stems["vocals"], GATE_RATE), segments=[PHRASE])
    settings = GateSettings(attenuation_db=30.0, fade_s=0.05, margin_before_s=0.0, margin_after_s=0.0)
    return stems, apply_sparse_gate(stems, activity, GATE_RATE, settings), settings


def test_gate_keeps_vocals_plus_accompaniment_equal_to_the_mixture(gated_case) -> None:
    stems, gated, _ = gated_case
    np.testing.assert_allclose(
        gated["vocals"] + gated["accompaniment"], stems["vocals"] + stems["accompaniment"], atol=1e-6
    )


def test_gate_attenuates_vocals_by_the_set_amount_away_from_phrases(gated_case) -> None:
    stems, gated, settings = gated_case
    clear = round((PHRASE[0] - settings.fade_s) * GATE_RATE)  # before the fade-in starts
    floor = 10 ** (-settings.attenuation_db / 20)
    np.testing.assert_allclose(gated["vocals"][:, :clear], stems["vocals"][:, :clear] * floor, rtol=1e-5)


def test_gate_leaves_vocals_untouched_inside_phrases(gated_case) -> None:
    stems, gated, _ = gated_case
    inside = slice(round(PHRASE[0] * GATE_RATE), round(PHRASE[1] * GATE_RATE))
    np.testing.assert_array_equal(gated["vocals"][:, inside], stems["vocals"][:, inside])


def test_gate_fades_without_a_step(gated_case) -> None:
    stems, gated, settings = gated_case
    gain = gated["vocals"][0] / stems["vocals"][0]
    assert np.abs(np.diff(gain)).max() < 2.0 / (settings.fade_s * GATE_RATE)
