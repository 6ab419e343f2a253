"""The chunked SSD scan agrees with the token-by-token recurrence."""

from __future__ import annotations

import pytest
import torch

from model.ssd import ssd_scan, ssd_scan_ref


def random_inputs(batch=2, length=37, heads=4, headdim=8, groups=1, state=16, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = dict(dtype=dtype)
    return dict(
        x=torch.randn(batch, length, heads, headdim, generator=g, **shape),
        dt=torch.randn(batch, length, heads, generator=g, **shape),
        A=-torch.rand(heads, generator=g, **shape) * 8,
        B=torch.randn(batch, length, groups, state, generator=g, **shape),
        C=torch.randn(batch, length, groups, state, generator=g, **shape),
    )


def assert_close(actual, expected, rel):
    scale = expected.abs().max().clamp(min=1e-12)
    assert ((actual.double() - expected.double()).abs().max() / scale).item() < rel


@pytest.mark.parametrize("length", [1, 5, 63, 64, 65, 200])
@pytest.mark.parametrize("chunk_size", [1, 16, 64, 256])
def test_matches_recurrence_for_any_length_and_chunk(length, chunk_size):
    inputs = random_inputs(length=length)
    y = ssd_scan(**inputs, chunk_size=chunk_size, dt_softplus=True)
    assert_close(y, ssd_scan_ref(**inputs, dt_softplus=True), 1e-10)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_heads_share_their_group_of_b_and_c(groups):
    inputs = random_inputs(heads=4, groups=groups, length=50)
    assert_close(ssd_scan(**inputs, chunk_size=16, dt_softplus=True), ssd_scan_ref(**inputs, dt_softplus=True), 1e-10)


@pytest.mark.parametrize("skip_shape", [(4,), (4, 8)])
def test_skip_gate_bias_and_limit(skip_shape):
    inputs = random_inputs(length=70)
    g = torch.Generator().manual_seed(1)
    extras = dict(
        D=torch.randn(*skip_shape, generator=g, dtype=torch.float64),
        z=torch.randn(2, 70, 4, 8, generator=g, dtype=torch.float64),
        dt_bias=torch.randn(4, generator=g, dtype=torch.float64),
        dt_softplus=True,
        dt_limit=(0.01, 2.0),
    )
    assert_close(ssd_scan(**inputs, chunk_size=32, **extras), ssd_scan_ref(**inputs, **extras), 1e-10)


def test_initial_and_final_states():
    inputs = random_inputs(length=45)
    initial = torch.randn(2, 4, 8, 16, dtype=torch.float64)
    y, final = ssd_scan(**inputs, chunk_size=16, dt_softplus=True, initial_states=initial, return_final_states=True)
    y_ref, final_ref = ssd_scan_ref(**inputs, dt_softplus=True, initial_states=initial, return_final_states=True)
    assert_close(y, y_ref, 1e-10)
    assert_close(final, final_ref, 1e-10)


def test_final_state_continues_the_scan():
    """Scanning two halves, handing the state over, equals scanning the whole."""
    inputs = random_inputs(length=60)
    whole = ssd_scan(**inputs, chunk_size=16, dt_softplus=True)
    first = {k: v[:, :25] if v.dim() > 1 else v for k, v in inputs.items()}
    second = {k: v[:, 25:] if v.dim() > 1 else v for k, v in inputs.items()}
    y1, state = ssd_scan(**first, chunk_size=16, dt_softplus=True, return_final_states=True)
    y2 = ssd_scan(**second, chunk_size=16, dt_softplus=True, initial_states=state)
    assert_close(torch.cat([y1, y2], dim=1), whole, 1e-10)


def test_float32_accumulates_accurately():
    inputs = random_inputs(length=300, dtype=torch.float32)
    reference = ssd_scan_ref(**{k: v.double() for k, v in inputs.items()}, dt_softplus=True)
    y = ssd_scan(**inputs, chunk_size=64, dt_softplus=True)
    assert y.dtype == torch.float32
    assert_close(y, reference, 1e-5)


def test_bfloat16_inputs_return_bfloat16_computed_in_float32():
    inputs = random_inputs(length=100, dtype=torch.float32)
    low = {k: v.bfloat16() for k, v in inputs.items()}
    y = ssd_scan(**low, chunk_size=32, dt_softplus=True)
    reference = ssd_scan_ref(**{k: v.double() for k, v in low.items()}, dt_softplus=True)
    assert y.dtype == torch.bfloat16
    assert_close(y, reference, 1e-2)  # only the final rounding to bfloat16 is lost


def test_uneven_head_groups_are_refused():
    inputs = random_inputs(heads=4, groups=3)
    with pytest.raises(ValueError, match="groups"):
        ssd_scan(**inputs, chunk_size=8)


def test_bfloat16_matmuls_stay_close_to_the_recurrence():
    inputs = random_inputs(length=200, heads=4, headdim=16, state=32, dtype=torch.float32)
    reference = ssd_scan_ref(**{k: v.double() for k, v in inputs.items()}, dt_softplus=True)
    y, state = ssd_scan(**inputs, chunk_size=64, dt_softplus=True, matmul_dtype=torch.bfloat16,
                        return_final_states=True)
    assert y.dtype == torch.float32 and state.dtype == torch.float32
    assert_close(y, reference, 3e-2)


def test_autocast_does_not_lower_the_scan_precision():
    inputs = random_inputs(length=150, dtype=torch.float32)
    expected = ssd_scan(**inputs, chunk_size=64, dt_softplus=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = ssd_scan(**inputs, chunk_size=64, dt_softplus=True)
    assert y.dtype == torch.float32
    assert_close(y, expected, 1e-6)


def test_gradients_flow_through_the_chunked_scan():
    inputs = {k: v.requires_grad_() for k, v in random_inputs(batch=1, length=20, heads=2, headdim=2, state=4).items()}
    torch.autograd.gradcheck(
        lambda x, dt, A, B, C: ssd_scan(x, dt, A, B, C, chunk_size=8, dt_softplus=True),
        tuple(inputs[k] for k in ("x", "dt", "A", "B", "C")),
    )
