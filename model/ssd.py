"""The Mamba2 state-space scan ("SSD") in plain PyTorch.

`ssd_scan` has the signature and semantics of mamba_ssm's `mamba_chunk_scan_combined`, so a CUDA kernel can
stand in for it without the callers noticing. It evaluates the selective recurrence of spec §2.6 step 5,

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
        y = y + x * (skip[:, None] if skip.dim() == 1 else skip)
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
    Returns:
        y `(b, l, h, p)` in the dtype of x, and the final state `(b, h, p, n)` (float32) when asked.
    Any length works (the tail chunk is padded with Δ = 0, which leaves the state untouched); the arithmetic is
    float32 whatever the input dtype, float64 for float64 inputs.
    """
    length, heads = x.shape[1], x.shape[2]
    groups = B.shape[2]
    if heads % groups:
        raise ValueError(f"{heads} heads cannot be split evenly between {groups} groups")
    chunk_size = min(chunk_size, length)  # a chunk longer than the sequence would only add padding
    dtype = _compute_dtype(x)
    delta = _step_sizes(dt, dt_bias, dt_softplus, dt_limit, dtype)

    pad = (-length) % chunk_size
    xs = _pad_time(x.to(dtype) * delta[..., None], pad)
    delta_a = _pad_time(delta * A.to(dtype), pad)
    Bs = _pad_time(B.to(dtype), pad)
    Cs = _pad_time(C.to(dtype), pad)

    # Chunk every sequence; heads are grouped as (g r) so that the heads sharing B/C form one matmul.
    xs = rearrange(xs, "b (c q) (g r) p -> b c g q r p", q=chunk_size, g=groups)
    Bs = rearrange(Bs, "b (c q) g n -> b c g q n", q=chunk_size)
    Cs = rearrange(Cs, "b (c q) g n -> b c g q n", q=chunk_size)
    log_decay = rearrange(delta_a, "b (c q) (g r) -> b c g r q", q=chunk_size, g=groups).cumsum(dim=-1)

    # 1. Inside each chunk: y_i = Σ_{j ≤ i} (C_i · B_j) · exp(a_i − a_j) · x_j.
    steps = torch.arange(chunk_size, device=x.device)
    causal = steps[:, None] >= steps[None, :]
    segment = log_decay[..., :, None] - log_decay[..., None, :]
    decay = torch.exp(segment.masked_fill(~causal, -math.inf))  # (b c g r q q)
    scores = Cs @ Bs.transpose(-1, -2)  # (b c g q q), shared by the heads of a group
    x_heads = rearrange(xs, "b c g q r p -> b c g r q p")
    y = (decay * scores[:, :, :, None]) @ x_heads  # (b c g r q p)

    # 2-4. Only needed when a state enters a chunk or leaves the last one (a lone chunk from zero skips them).
    rows = heads // groups
    state = None
    if initial_states is not None or return_final_states or Bs.shape[1] > 1:
        y, state = _add_state_passing(y, x_heads, Bs, Cs, log_decay, initial_states)
    y = rearrange(y, "b c g r q p -> b (c q) (g r) p")[:, :length]
    y = _skip_and_gate(y, x.to(dtype), D, z).to(x.dtype)
    if return_final_states:
        return y, rearrange(state, "b g (r p) n -> b (g r) p n", r=rows)
    return y


def _add_state_passing(
    y: Tensor, x_heads: Tensor, Bs: Tensor, Cs: Tensor, log_decay: Tensor, initial_states: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Add what the state entering each chunk contributes to `y`; return `y` and the final state.

    Chunked layouts as in `ssd_scan`: y, x_heads `(b c g r q p)`, Bs/Cs `(b c g q n)`, log_decay `(b c g r q)`.
    The final state is `(b g (r p) n)`.
    """
    chunks, groups, rows, headdim = x_heads.shape[1], x_heads.shape[2], x_heads.shape[3], x_heads.shape[5]
    # What each chunk adds to the state, as if it had started from zero: Σ_j exp(a_end − a_j) · x_j ⊗ B_j.
    to_end = torch.exp(log_decay[..., -1:] - log_decay)  # (b c g r q)
    weighted = rearrange(x_heads * to_end[..., None], "b c g r q p -> b c g (r p) q")
    chunk_decay = torch.exp(log_decay[..., -1]).repeat_interleave(headdim, dim=-1)[..., None]  # (b c g (r p) 1)
    within = torch.exp(log_decay)[..., None]  # (b c g r q 1)
    if initial_states is None:
        state = None
    else:
        state = rearrange(initial_states.to(y.dtype), "b (g r) p n -> b g (r p) n", g=groups)

    # Chunk by chunk: read the entering state (exp(a_i) · C_i · S_in), then carry it past the chunk.
    outputs = []
    for c in range(chunks):
        y_c = y[:, c]
        if state is not None:
            from_state = rearrange(Cs[:, c] @ state.transpose(-1, -2), "b g q (r p) -> b g r q p", r=rows)
            y_c = y_c + from_state * within[:, c]
        outputs.append(y_c)
        added = weighted[:, c] @ Bs[:, c]  # (b g (r p) n)
        state = added if state is None else torch.addcmul(added, chunk_decay[:, c], state)
    return torch.stack(outputs, dim=1), state


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
