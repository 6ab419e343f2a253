"""Mamba2 mixer and the pieces around it, with mamba_ssm's parameter names, shapes, defaults and init.

Everything here is plain PyTorch and runs anywhere; mamba_ssm is never imported (it cannot even be imported
without its compiled CUDA extension). The scan goes through a small backend registry, the seam where a CUDA
kernel can plug in: `register_scan_backend("name", fn)` with `fn` shaped like `model.ssd.ssd_scan`.

Math: official-model.md §2.5-2.6 (mamba_ssm 2.2.2 `modules/mamba2.py`, unfused path, checked against the fused one).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from model.ssd import NO_DT_LIMIT, ssd_scan

__all__ = [
    "Mamba2",
    "MambaRMSNorm",
    "GatedRMSNorm",
    "register_scan_backend",
    "available_scan_backends",
    "select_scan_backend",
    "ScanBackend",
]


# mamba_ssm 2.2.2 `Mamba2.__init__` defaults (official-model.md §2.5).
D_STATE = 128
D_CONV = 4
EXPAND = 2  # the library default; BSMamba2 passes expand=4
HEADDIM = 64
NGROUPS = 1
A_INIT_RANGE = (1.0, 16.0)
DT_MIN, DT_MAX, DT_INIT_FLOOR = 0.001, 0.1, 1e-4
CHUNK_SIZE = 256
NORM_EPS = 1e-5

TORCH_SCAN_CHUNK = 64
"""Chunk length for the PyTorch scan: the intra-chunk cost grows with it, the state cost does not, and
64 was fastest on a 2-core CPU for 801-frame sequences (scripts/bench_model.py). The result does not depend on it."""

ScanFn = Callable[..., Tensor]


@dataclass(frozen=True)
class ScanBackend:
    """A scan with `ssd_scan`'s signature and the chunk length it runs best with (None: the module's)."""

    scan: ScanFn
    chunk_size: int | None = None


_SCAN_BACKENDS: dict[str, ScanBackend] = {"torch": ScanBackend(ssd_scan, TORCH_SCAN_CHUNK)}


def register_scan_backend(name: str, scan: ScanFn, chunk_size: int | None = None) -> None:
    """Make `scan` (same signature as `ssd_scan`) available to every Mamba2 under `name`."""
    _SCAN_BACKENDS[name] = ScanBackend(scan, chunk_size)


def available_scan_backends() -> tuple[str, ...]:
    return tuple(_SCAN_BACKENDS)


def select_scan_backend(name: str) -> ScanBackend:
    """The backend registered as `name`; raises a KeyError listing the registered ones."""
    try:
        return _SCAN_BACKENDS[name]
    except KeyError:
        raise KeyError(f"unknown scan backend {name!r}; registered: {sorted(_SCAN_BACKENDS)}") from None


class MambaRMSNorm(nn.Module):
    """mamba_ssm's RMSNorm (the Block pre-norm): `x · rsqrt(mean(x²) + eps) · w`, in float32."""

    def __init__(self, dim: int, eps: float = NORM_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps).to(x.dtype)


class GatedRMSNorm(nn.Module):
    """mamba_ssm's gated RMSNorm with `norm_before_gate=False`: normalise `y · silu(z)` per group, in float32."""

    def __init__(self, dim: int, group_size: int, eps: float = NORM_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.group_size = group_size
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, y: Tensor, z: Tensor) -> Tensor:
        """float32 for float32 inputs; bfloat16 inputs stay bfloat16 (rms_norm takes its statistics in float32)."""
        dtype = torch.bfloat16 if y.dtype == torch.bfloat16 else torch.float32
        gated = F.silu(z.to(dtype)).mul_(y.to(dtype))
        weight = self.weight.to(dtype)
        if self.group_size == gated.shape[-1]:  # one group: the gain folds into the norm
            return F.rms_norm(gated, (self.group_size,), weight, self.eps).to(y.dtype)
        grouped = rearrange(gated, "... (g s) -> ... g s", s=self.group_size)
        normed = F.rms_norm(grouped, (self.group_size,), eps=self.eps)
        return (rearrange(normed, "... g s -> ... (g s)") * weight).to(y.dtype)


class Mamba2(nn.Module):
    """The Mamba2 mixer: `(batch, length, d_model)` → `(batch, length, d_model)`.

    in_proj → [z | xBC | dt]; causal depthwise conv + SiLU on xBC → [x | B | C]; selective scan with
    Δ = softplus(dt + dt_bias), A = −exp(A_log), skip D; gated RMSNorm with z; out_proj.
    """

    def __init__(
        self,
        d_model: int,
        *,
        d_state: int = D_STATE,
        d_conv: int = D_CONV,
        expand: int = EXPAND,
        headdim: int = HEADDIM,
        ngroups: int = NGROUPS,
        A_init_range: tuple[float, float] = A_INIT_RANGE,
        dt_min: float = DT_MIN,
        dt_max: float = DT_MAX,
        dt_init_floor: float = DT_INIT_FLOOR,
        dt_limit: tuple[float, float] = NO_DT_LIMIT,
        chunk_size: int = CHUNK_SIZE,
        scan_backend: str = "torch",
    ) -> None:
        super().__init__()
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = expand * d_model
        if self.d_inner % headdim:
            raise ValueError(f"d_inner {self.d_inner} is not a multiple of headdim {headdim}")
        self.headdim, self.ngroups = headdim, ngroups
        self.nheads = self.d_inner // headdim
        self.dt_limit, self.chunk_size = dt_limit, chunk_size
        self.scan_backend = scan_backend
        self.conv_dim = self.d_inner + 2 * ngroups * d_state

        # Registration order follows mamba_ssm so that state_dict() lists keys in the same order.
        self.dt_bias = nn.Parameter(_init_dt_bias(self.nheads, dt_min, dt_max, dt_init_floor))
        self.A_log = nn.Parameter(torch.empty(self.nheads).uniform_(*A_init_range).log())
        self.D = nn.Parameter(torch.ones(self.nheads))
        for no_decay in (self.dt_bias, self.A_log, self.D):
            no_decay._no_weight_decay = True
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner + 2 * ngroups * d_state + self.nheads, bias=False)
        self.conv1d = nn.Conv1d(
            self.conv_dim, self.conv_dim, d_conv, groups=self.conv_dim, padding=d_conv - 1, bias=True
        )
        self.norm = GatedRMSNorm(self.d_inner, group_size=self.d_inner // ngroups)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, u: Tensor) -> Tensor:
        """`(batch, length, d_model)` → `(batch, length, d_model)`, in the dtype the weights are held in.

        With bfloat16 weights (`model.precision.prepare_model`) everything between the projections is
        bfloat16 too, and the scan's matmuls run in bfloat16 around its float32 decays and state.
        """
        dtype = self.in_proj.weight.dtype
        z, xbc, dt = self.in_proj(u.to(dtype)).split([self.d_inner, self.conv_dim, self.nheads], dim=-1)
        xbc = F.silu(causal_depthwise_conv(xbc, self.conv1d.weight, self.conv1d.bias))
        x, B, C = xbc.split([self.d_inner, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1)
        backend = select_scan_backend(self.scan_backend)
        chunk_size = backend.chunk_size or self.chunk_size
        y = backend.scan(
            rearrange(x, "b l (h p) -> b l h p", p=self.headdim),
            dt,
            -torch.exp(self.A_log.float()),
            rearrange(B, "b l (g n) -> b l g n", g=self.ngroups),
            rearrange(C, "b l (g n) -> b l g n", g=self.ngroups),
            chunk_size,
            D=self.D,
            dt_bias=self.dt_bias,
            dt_softplus=True,
            dt_limit=self.dt_limit,
            **({} if dtype == torch.float32 else {"matmul_dtype": dtype}),
        )
        y = self.norm(rearrange(y, "b l h p -> b l (h p)"), z)
        return self.out_proj(y)


def causal_depthwise_conv(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """Per-channel causal conv, `out[t] = bias + Σ_k w[k] · x[t − K + 1 + k]` (zeros before t = 0).

    x: `(batch, length, channels)`; weight: `(channels, 1, K)` as stored by `nn.Conv1d`. In float32, K shifted
    multiply-adds on the channels-last layout: several times faster on a CPU than `F.conv1d` with the two
    transposes it needs, and the same numbers. In bfloat16 the other way round: oneDNN's conv (float32
    accumulation) is 4-5x faster than bfloat16 element-wise passes (scripts/bench_model.py, issue 10), except
    under torch.compile, which fuses the shifted adds into one loop (model.compile).
    """
    kernel = weight.shape[-1]
    length = x.shape[1]
    if x.dtype == torch.bfloat16 and not torch.compiler.is_compiling():
        channels_first = F.conv1d(x.transpose(1, 2), weight.to(x.dtype), bias if bias is None else bias.to(x.dtype),
                                  padding=kernel - 1, groups=x.shape[-1])
        return channels_first[..., :length].transpose(1, 2).contiguous()
    padded = F.pad(x, (0, 0, kernel - 1, 0))
    taps = weight[:, 0, :].to(x.dtype)  # (channels, K)
    start = bias.to(x.dtype) if bias is not None else torch.zeros((), dtype=x.dtype, device=x.device)
    out = torch.addcmul(start, padded[:, kernel - 1 :], taps[:, -1])
    for k in range(kernel - 1):
        out = out.addcmul_(padded[:, k : k + length], taps[:, k])
    return out


def _init_dt_bias(nheads: int, dt_min: float, dt_max: float, floor: float) -> Tensor:
    """Inverse softplus of Δ ~ logU(dt_min, dt_max) floored at `floor` (mamba_ssm's init)."""
    dt = torch.exp(torch.rand(nheads) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=floor)
    return dt + torch.log(-torch.expm1(-dt))
