"""The Mamba2 state-space scan ("SSD") in plain PyTorch.

`ssd_scan` has the signature and semantics of mamba_ssm's `mamba_chunk_scan_combined`, so a CUDA kernel can
stand in for it without the callers noticing. It evaluates the selective recurrence of official-model.md §2.6 step 5,

    S_t = exp(dt_t · A) · S_{t-1} + dt_t · x_t ⊗ B_t,      y_t = S_t · C_t + D · x_t,

per head with the chunked "state space duality" algorithm of the Mamba2 paper: inside a chunk the scan is a
masked (Q × Q) attention-like matrix product, across chunks a short recurrence over chunk states. Every step is
a batched matmul, so it runs at GEMM speed on a CPU and on a GPU. `ssd_scan_ref` is the token-by-token
recurrence that the tests hold it to.

Shapes (mamba_ssm's names): batch b, length l, heads h, head dim p, groups g, state size n; every head in
group `i` reads B/C of that group (heads are split evenly, in order, between groups).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

__all__ = ["ssd_scan", "ssd_scan_ref"]

NO_DT_LIMIT = (0.0, math.inf)
"""mamba_ssm's default `dt_limit`: no clamping of the step size."""

EXP_FLOOR = -60.0
"""Log decays are clamped to at least this before `exp`: exp(−60) ≈ 9e-27 changes no float32 sum of O(1)
terms, and a CPU's vectorised exp runs 5-10x slower on inputs whose result underflows (or on −inf) than on
ordinary ones (measured on AVX-512, issue 10)."""


def _compute_dtype(x: Tensor) -> torch.dtype:
    """Accumulate in float32, or float64 when the caller works in float64 (for references)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _step_sizes(
    dt: Tensor, dt_bias: Tensor | None, dt_softplus: bool, dt_limit: tuple[float, float], dtype: torch.dtype
) -> Tensor:
    """Δ = clamp(softplus(dt + dt_bias)) in the compute dtype, as mamba_ssm does before the scan."""
    dt = dt.to(dtype)
    if dt_bias is not None:
        dt = dt + dt_bias.to(dtype)
    if dt_softplus:
        dt = F.softplus(dt)  # linear above 20, like mamba_ssm's kernels
    if tuple(dt_limit) != NO_DT_LIMIT:
        dt = dt.clamp(min=dt_limit[0], max=dt_limit[1])
    return dt


def _pad_time(t: Tensor, pad: int) -> Tensor:
    """Zero-pad axis 1 (time) at the end by `pad` steps; no copy when there is nothing to pad."""
    if not pad:
        return t
    return F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad))


def _skip_and_gate(y: Tensor, x: Tensor, D: Tensor | None, z: Tensor | None) -> Tensor:
    """Add the skip connection D·x and apply the SiLU gate z, as the fused kernels do."""
    if D is not None:
        skip = D.to(y.dtype)
        y = torch.addcmul(y, x.to(y.dtype), skip[:, None] if skip.dim() == 1 else skip)
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y


def ssd_scan(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    chunk_size: int,
    D: Tensor | None = None,
    z: Tensor | None = None,
    dt_bias: Tensor | None = None,
    dt_softplus: bool = False,
    dt_limit: tuple[float, float] = NO_DT_LIMIT,
    initial_states: Tensor | None = None,
    return_final_states: bool = False,
    matmul_dtype: torch.dtype | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Chunked selective scan, a drop-in for mamba_ssm's `mamba_chunk_scan_combined`.

    Args:
        x: `(b, l, h, p)` inputs.
        dt: `(b, l, h)` raw step sizes (before `dt_bias`, softplus and `dt_limit`).
        A: `(h,)` negative decay rates.
        B, C: `(b, l, g, n)` input and output projections of the state.
        chunk_size: chunk length Q; any positive value gives the same result up to rounding.
        D: `(h,)` or `(h, p)` skip weights. z: `(b, l, h, p)` gate, `y · silu(z)`.
        initial_states: `(b, h, p, n)` state before the first step (zero when None).
        matmul_dtype: operand dtype of the batched matmuls (not an argument of mamba_ssm's). None: the
            compute dtype below; torch.bfloat16 runs them on a CPU's bf16 units (oneDNN accumulates in float32),
            with Δ, the cumulative decay, `exp` and the state recurrence still in float32.
    Returns:
        y `(b, l, h, p)` in the dtype of x, and the final state `(b, h, p, n)` (float32) when asked.
    Any length works (the tail chunk is padded with Δ = 0, which leaves the state untouched); the arithmetic is
    float32 whatever the input dtype (autocast is switched off inside), float64 for float64 inputs.
    """
    with torch.autocast(x.device.type, enabled=False):
        return _ssd_scan(
            x, dt, A, B, C, chunk_size, D, z, dt_bias, dt_softplus, dt_limit, initial_states,
            return_final_states, matmul_dtype,
        )


def _ssd_scan(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    chunk_size: int,
    D: Tensor | None,
    z: Tensor | None,
    dt_bias: Tensor | None,
    dt_softplus: bool,
    dt_limit: tuple[float, float],
    initial_states: Tensor | None,
    return_final_states: bool,
    matmul_dtype: torch.dtype | None,
) -> Tensor | tuple[Tensor, Tensor]:
    batch, length, heads, headdim = x.shape
    groups = B.shape[2]
    if heads % groups:
        raise ValueError(f"{heads} heads cannot be split evenly between {groups} groups")
    rows = heads // groups
    dtype = _compute_dtype(x)
    mm_dtype = dtype if matmul_dtype is None else matmul_dtype
    # As many chunks as `chunk_size` needs, evened out so that the tail chunk pads the least.
    chunks = -(-length // min(chunk_size, length))
    chunk = -(-length // chunks)
    pad = chunks * chunk - length
    delta = _step_sizes(dt, dt_bias, dt_softplus, dt_limit, dtype)
    # Without autograd the big intermediates are written in place and into preallocated buffers; under
    # torch.compile the functional form is what Inductor fuses (and `out=` into reshaped views cannot be traced).
    inplace = not torch.compiler.is_compiling() and not (torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, dt, A, B, C, D, z, dt_bias, initial_states)
    ))

    # Chunked layouts (c chunks of q steps); heads are grouped as (g r) so that the heads sharing B/C form one
    # matmul. Δ·x is written once, transposed to (p q) so that the state products read it without a copy.
    xs_t = _chunked_step_inputs(x, delta, chunk, groups, mm_dtype, inplace)  # (b c g r p q)
    Bs = rearrange(_pad_time(B.to(mm_dtype), pad), "b (c q) g n -> b c g q n", q=chunk)
    Cs = rearrange(_pad_time(C.to(mm_dtype), pad), "b (c q) g n -> b c g q n", q=chunk)
    delta_a = _pad_time(delta * A.to(dtype), pad)
    # Contiguous along q: the (q × q) differences below are then written and read in plain order.
    log_decay = rearrange(delta_a, "b (c q) (g r) -> b c g r q", q=chunk, g=groups).contiguous().cumsum(dim=-1)

    # 1. Inside each chunk: y_i = Σ_{j ≤ i} (C_i · B_j) · exp(a_i − a_j) · Δ_j x_j.
    weights = _intra_chunk_weights(log_decay, Cs @ Bs.transpose(-1, -2), mm_dtype, inplace)  # (b c g r q q)
    y = weights @ xs_t.transpose(-1, -2)  # (b c g r q p)

    # 2-4. Only needed when a state enters a chunk or leaves the last one (a lone chunk from zero skips them).
    y_tokens = rearrange(y, "b c g r q p -> b c q g r p")
    terms = [y_tokens]
    state = None
    if initial_states is not None or return_final_states or chunks > 1:
        from_state, within, state = _state_passing(xs_t, Bs, Cs, log_decay, initial_states, dtype)
        terms = [y_tokens, from_state, within]

    # Back to (b l h p), the skip D·x and the gate: one pass each, into a buffer in the token order.
    out_dtype = torch.promote_types(mm_dtype, x.dtype)
    if inplace:
        out = x.new_empty((batch, chunks, chunk, groups, rows, headdim), dtype=out_dtype)
        if len(terms) == 1:
            out.copy_(y_tokens)
        else:
            torch.addcmul(*terms, out=out)
    else:
        out = (y_tokens if len(terms) == 1 else torch.addcmul(*terms)).to(out_dtype)
    y = rearrange(out, "b c q g r p -> b (c q) (g r) p")[:, :length]
    y = _skip_and_gate(y, x, D, z).to(x.dtype)
    if return_final_states:
        return y, rearrange(state, "b g r p n -> b (g r) p n")
    return y


def _chunked_step_inputs(
    x: Tensor, delta: Tensor, chunk: int, groups: int, dtype: torch.dtype, inplace: bool
) -> Tensor:
    """Δ_t · x_t, zero-padded to whole chunks, as a `(b c g r p q)` tensor of `dtype` (contiguous, written
    in one pass, when `inplace`; autograd cannot follow `out=`)."""
    batch, length, heads, headdim = x.shape
    full, tail = divmod(length, chunk)
    if not inplace:
        scaled = _pad_time((x.to(delta.dtype) * delta[..., None]).to(dtype), (-length) % chunk)
        return rearrange(scaled, "b (c q) (g r) p -> b c g r p q", q=chunk, g=groups)
    out = x.new_empty((batch, full + bool(tail), groups, heads // groups, headdim, chunk), dtype=dtype)
    tokens = rearrange(out, "b c g r p q -> b c q g r p")  # a view: the same memory, in time order
    split = full * chunk
    if full:
        _step_inputs_into(tokens[:, :full], x[:, :split], delta[:, :split])
    if tail:
        _step_inputs_into(tokens[:, full:, :tail], x[:, split:], delta[:, split:])
        tokens[:, full:, tail:].zero_()
    return out


def _step_inputs_into(out: Tensor, x: Tensor, delta: Tensor) -> None:
    """`out (b c q g r p) = Δ · x` for x `(b l h p)` and Δ `(b l h)` covering exactly out's steps."""
    steps, groups = out.shape[2], out.shape[3]
    torch.mul(
        rearrange(x, "b (c q) (g r) p -> b c q g r p", q=steps, g=groups),
        rearrange(delta, "b (c q) (g r) -> b c q g r 1", q=steps, g=groups),
        out=out,
    )


def _intra_chunk_weights(log_decay: Tensor, scores: Tensor, dtype: torch.dtype, inplace: bool) -> Tensor:
    """`(C_i · B_j) · exp(a_i − a_j)` for j ≤ i, else 0, as `(b c g r q q)` of `dtype`.

    log_decay `(b c g r q)` (float32/64: the differences need its precision), scores `(b c g q q)`. The causal
    mask goes on the scores, r times smaller than the weights; the differences are clamped to
    [EXP_FLOOR, 0] (a_i − a_j ≤ 0 for j ≤ i, as Δ·A ≤ 0), so `exp` never sees −inf or an underflow. Built in
    place when `inplace`: one difference, the clamp, exp, the product.
    """
    steps = log_decay.shape[-1]
    above = torch.ones(steps, steps, dtype=torch.bool, device=log_decay.device).triu_(1)
    causal_scores = scores.masked_fill(above, 0)[:, :, :, None].to(dtype)
    segment = log_decay[..., :, None] - log_decay[..., None, :]
    if not inplace:
        return segment.clamp(EXP_FLOOR, 0.0).exp().to(dtype) * causal_scores
    return segment.clamp_(EXP_FLOOR, 0.0).exp_().to(dtype).mul_(causal_scores)


def _state_passing(
    xs_t: Tensor, Bs: Tensor, Cs: Tensor, log_decay: Tensor, initial_states: Tensor | None, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor]:
    """What the state entering each chunk adds to y, as `from_state · within`; and the final state.

    Chunked layouts as in `ssd_scan`: xs_t `(b c g r p q)`, Bs/Cs `(b c g q n)`, log_decay `(b c g r q)`.
    Returns from_state `(b c q g r p)` (a view), within `(b c q g r 1)` and the final state `(b g r p n)` in
    `dtype`. Decays are summed and exponentiated in `dtype`; the products run in the dtype of xs_t.
    """
    chunks, rows = xs_t.shape[1], xs_t.shape[3]
    mm_dtype = xs_t.dtype
    # 2. What each chunk adds to the state, as if it had started from zero: Σ_j exp(a_end − a_j) · Δ_j x_j ⊗ B_j.
    to_end = (log_decay[..., -1:] - log_decay).clamp_min(EXP_FLOOR).exp().to(mm_dtype)  # (b c g r q)
    weighted = rearrange(xs_t * to_end[..., None, :], "b c g r p q -> b c g (r p) q")
    added = rearrange(weighted @ Bs, "b c g (r p) n -> b c g r p n", r=rows)

    # 3. The state entering chunk z (z = chunks: the final one), all at once:
    #    S_z = Σ_{k<z} exp(P_z − P_{k+1}) · added_k + exp(P_z) · S_init, with P_z the log decay before chunk z.
    before = F.pad(rearrange(log_decay[..., -1], "b c g r -> b g r c"), (1, 0)).cumsum(dim=-1)  # (b g r z)
    segment = before[..., :, None] - before[..., None, 1:]  # (b g r z k)
    later = torch.ones(chunks + 1, chunks, dtype=torch.bool, device=segment.device).triu_(0)  # k ≥ z
    passing = segment.masked_fill(later, -math.inf).exp().to(mm_dtype)  # small: (chunks + 1) × chunks
    entering = torch.einsum("bgrzk,bkgrpn->bzgrpn", passing, added).to(dtype)  # (b z g r p n)
    if initial_states is not None:
        initial = rearrange(initial_states.to(dtype), "b (g r) p n -> b 1 g r p n", r=rows)
        entering = entering + rearrange(torch.exp(before), "b g r z -> b z g r 1 1") * initial

    # 4. What the entering state contributes to each step: exp(a_i) · C_i · S_z.
    states = rearrange(entering[:, :chunks].to(mm_dtype), "b c g r p n -> b c g (r p) n")
    from_state = Cs @ states.transpose(-1, -2)  # (b c g q (r p))
    within = rearrange(log_decay.clamp_min(EXP_FLOOR).exp(), "b c g r q -> b c q g r 1")
    return rearrange(from_state, "b c g q (r p) -> b c q g r p", r=rows), within, entering[:, chunks]


def ssd_scan_ref(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    chunk_size: int | None = None,
    D: Tensor | None = None,
    z: Tensor | None = None,
    dt_bias: Tensor | None = None,
    dt_softplus: bool = False,
    dt_limit: tuple[float, float] = NO_DT_LIMIT,
    initial_states: Tensor | None = None,
    return_final_states: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """The same scan as `ssd_scan`, one time step at a time: slow, obviously right, for tests.

    `chunk_size` is accepted for signature parity and ignored.
    """
    batch, length, heads, headdim = x.shape
    groups = B.shape[2]
    dtype = _compute_dtype(x)
    delta = _step_sizes(dt, dt_bias, dt_softplus, dt_limit, dtype)
    group_of_head = torch.arange(heads, device=x.device) // (heads // groups)
    Bh = B.to(dtype)[:, :, group_of_head]  # (b l h n)
    Ch = C.to(dtype)[:, :, group_of_head]
    xd = x.to(dtype)
    state = (
        x.new_zeros((batch, heads, headdim, B.shape[-1]), dtype=dtype)
        if initial_states is None
        else initial_states.to(dtype)
    )
    outputs = []
    for t in range(length):
        step = delta[:, t]  # (b h)
        decay = torch.exp(step * A.to(dtype))[..., None, None]
        state = decay * state + (step[..., None] * xd[:, t])[..., None] * Bh[:, t, :, None, :]
        outputs.append((state * Ch[:, t, :, None, :]).sum(-1))
    y = torch.stack(outputs, dim=1)
    y = _skip_and_gate(y, xd, D, z).to(x.dtype)
    if return_final_states:
        return y, state
    return y
