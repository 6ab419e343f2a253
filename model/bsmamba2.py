"""BSMamba2: band-split, dual-path bidirectional Mamba2 (Kim & Choi, "Mamba2 Meets Silence", 2025).

A reimplementation of the official `BSModel` with `module_type="mamba2"` (official-model.md §2), with the official
parameter names so that the released checkpoint loads with `strict=True`:

    complex STFT (b, c, f, t) ─ pack ─► (b, t, 4100) ─ band split ─► (b, t, k=62, d)
      ─ depth × [Mamba over time per band, Mamba over bands per frame] ─ RMSNorm
      ─ per-band MLP + GLU ─► complex mask (b, n, f·c, t) × STFT ─► (b, n, c, f, t)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn

from model.mamba2 import Mamba2, MambaRMSNorm
from model.stft import N_FFT, istft, stft

__all__ = ["BSMamba2Config", "BSMamba2", "DEFAULT_FREQS_PER_BANDS", "PRESETS"]

DEFAULT_FREQS_PER_BANDS: tuple[int, ...] = (
    (2,) * 24 + (4,) * 12 + (12,) * 8 + (24,) * 8 + (48,) * 8 + (128, 129)
)
"""STFT bins per band, low to high (official-model.md §2.2, the official `DEFAULT_FREQS_PER_BANDS`; 62 bands, 1025 bins)."""

MASK_HIDDEN_FACTOR = 4
"""Hidden width of each band's mask MLP, as a multiple of `dim` (official-model.md §2.7)."""

COMPLEX_PARTS = 2  # real, imaginary: the fastest axis of a band's features (official-model.md §2.1)


@dataclass(frozen=True)
class BSMamba2Config:
    """Hyperparameters; the defaults are the released model's (`src/conf/model/bandsplitmodel.yaml`)."""

    dim: int = 256
    depth: int = 6
    stereo: bool = True
    num_stems: int = 1
    mask_estimator_depth: int = 2
    freqs_per_bands: tuple[int, ...] = DEFAULT_FREQS_PER_BANDS
    mamba_expand: int = 4
    mamba_d_state: int = 128
    mamba_headdim: int = 64
    mamba_ngroups: int = 1
    mamba_d_conv: int = 4
    mamba_chunk_size: int = 256
    stems: tuple[str, ...] = field(default=("vocals",))

    def __post_init__(self) -> None:
        # JSON hands lists back; keep the config hashable and comparable.
        object.__setattr__(self, "freqs_per_bands", tuple(self.freqs_per_bands))
        object.__setattr__(self, "stems", tuple(self.stems))
        if sum(self.freqs_per_bands) != N_FFT // 2 + 1:
            raise ValueError(f"bands cover {sum(self.freqs_per_bands)} bins, the STFT has {N_FFT // 2 + 1}")
        if len(self.stems) != self.num_stems:
            raise ValueError(f"{self.num_stems} stems but {len(self.stems)} stem names")
        if self.mask_estimator_depth < 1:
            raise ValueError("mask_estimator_depth must be at least 1")

    @property
    def audio_channels(self) -> int:
        return 2 if self.stereo else 1

    @property
    def band_widths(self) -> tuple[int, ...]:
        """Features per band: bins × channels × (real, imaginary)."""
        return tuple(COMPLEX_PARTS * self.audio_channels * f for f in self.freqs_per_bands)

    def to_dict(self) -> dict:
        return asdict(self)


class BandRMSNorm(nn.Module):
    """BS-RoFormer's RMSNorm: `x / max(‖x‖₂, 1e-12) · √dim · γ` (official-model.md §2.2; no eps inside a root)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = math.sqrt(dim)
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=-1) * self.scale * self.gamma


class BandSplit(nn.Module):
    """`(b, t, Σ widths)` → `(b, t, bands, dim)`: per band, RMSNorm then Linear."""

    def __init__(self, dim: int, band_widths: tuple[int, ...]) -> None:
        super().__init__()
        self.band_widths = band_widths
        self.to_features = nn.ModuleList(
            nn.Sequential(BandRMSNorm(width), nn.Linear(width, dim)) for width in band_widths
        )

    def forward(self, x: Tensor) -> Tensor:
        """Float32 in and out; the Linear layers run in the dtype their weights are held in."""
        bands = x.split(self.band_widths, dim=-1)
        features = [linear(norm(band).to(linear.weight.dtype)) for (norm, linear), band in zip(self.to_features, bands)]
        return torch.stack(features, dim=-2).float()


def _mlp(dim_in: int, dim_hidden: int, dim_out: int, depth: int) -> nn.Sequential:
    """Linear layers with Tanh between them (BS-RoFormer's `MLP`; keys `.0`, `.2`, ...)."""
    dims = (dim_in, *((dim_hidden,) * (depth - 1)), dim_out)
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
        if i:
            layers.append(nn.Tanh())
        layers.append(nn.Linear(d_in, d_out))
    return nn.Sequential(*layers)


class MaskEstimator(nn.Module):
    """`(b, t, bands, dim)` → `(b, t, Σ widths)`: per band, MLP to 2·width then GLU (official-model.md §2.7)."""

    def __init__(self, dim: int, band_widths: tuple[int, ...], depth: int) -> None:
        super().__init__()
        hidden = dim * MASK_HIDDEN_FACTOR
        self.to_freqs = nn.ModuleList(
            nn.Sequential(_mlp(dim, hidden, 2 * width, depth), nn.GLU(dim=-1)) for width in band_widths
        )

    def forward(self, x: Tensor) -> Tensor:
        """In the dtype the weights are held in."""
        x = x.to(self.to_freqs[0][0][0].weight.dtype)
        return torch.cat([head(x[..., k, :]) for k, head in enumerate(self.to_freqs)], dim=-1)


class MambaBlockLayer(nn.Module):
    """mamba_ssm's `Block` with no MLP: pre-norm then mixer, returning `mixer(norm(u))` (official-model.md §2.4)."""

    def __init__(self, dim: int, config: BSMamba2Config) -> None:
        super().__init__()
        self.norm = MambaRMSNorm(dim)
        self.mixer = Mamba2(
            dim,
            d_state=config.mamba_d_state,
            d_conv=config.mamba_d_conv,
            expand=config.mamba_expand,
            headdim=config.mamba_headdim,
            ngroups=config.mamba_ngroups,
            chunk_size=config.mamba_chunk_size,
        )

    def forward(self, u: Tensor) -> Tensor:
        return self.mixer(self.norm(u))


class BidirectionalMamba(nn.Module):
    """The official `MambaBlock`: `(n, l, dim)` → `(n, l, dim)`.

    `f = u + fwd(u)`, `g = flip(v + bwd(v))` with `v = flip(u)`, then a kernel-1 ConvTranspose1d merges
    `[f, g]` back to `dim`, plus `u` once more (official-model.md §2.4: the input is added twice in total).

    `block_elements` (None: off) makes inference without autograd run the sequences in blocks of about that
    many (step × d_inner) activations: a speed knob for CPUs (caches, memory reuse), set by the code that runs
    songs through `BSMamba2.set_block_elements`. The result does not depend on it.
    """

    def __init__(self, dim: int, config: BSMamba2Config) -> None:
        super().__init__()
        self.forward_blocks = nn.ModuleList([MambaBlockLayer(dim, config)])
        self.backward_blocks = nn.ModuleList([MambaBlockLayer(dim, config)])
        self.linear = nn.ConvTranspose1d(2 * dim, dim, kernel_size=1, stride=1)
        self.block_elements: int | None = None

    def forward(self, u: Tensor) -> Tensor:
        if self.block_elements is None or torch.is_grad_enabled():
            return self._forward(u)
        # With autograd the per-op overhead of many small blocks costs more than it saves.
        mixer = self.forward_blocks[0].mixer
        per_block = max(1, self.block_elements // (mixer.d_inner * u.shape[1]))
        if per_block >= u.shape[0]:
            return self._forward(u)
        return torch.cat([self._forward(part) for part in u.split(per_block)])

    def _forward(self, u: Tensor) -> Tensor:
        """The residual stream `u` stays float32; the mixers and the merge run in the weights' dtype."""
        forward = u + self.forward_blocks[0](u)
        reversed_u = u.flip(1)
        backward = (reversed_u + self.backward_blocks[0](reversed_u)).flip(1)
        weight = self.linear.weight[:, :, 0]
        both = torch.cat([forward, backward], dim=-1).to(weight.dtype)
        # ConvTranspose1d with kernel 1 is a per-step linear map whose weight is stored (in, out, 1).
        merged = torch.matmul(both, weight) + self.linear.bias
        return merged + u


class BSMamba2(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="bsmamba2-space",
    tags=["audio", "music-source-separation", "vocals", "bsmamba2", "mamba2"],
    license="mit",
    repo_url="https://github.com/EuiYeonKim/BSMamba2",
):
    """The BSMamba2 separator network. `forward(stft)`: `(b, c, f, t)` complex → `(b, stems, c, f, t)` complex."""

    def __init__(self, config: BSMamba2Config | dict = BSMamba2Config()) -> None:
        super().__init__()
        # from_pretrained hands the saved config.json over as a dict.
        config = BSMamba2Config(**config) if isinstance(config, dict) else config
        self.config = config
        dim = config.dim
        widths = config.band_widths
        # Registration order = the official state_dict order (layers, final_norm, band_split, mask_estimators).
        self.layers = nn.ModuleList(
            nn.ModuleList([BidirectionalMamba(dim, config), BidirectionalMamba(dim, config)])
            for _ in range(config.depth)
        )
        self.final_norm = BandRMSNorm(dim)
        self.band_split = BandSplit(dim, widths)
        self.mask_estimators = nn.ModuleList(
            MaskEstimator(dim, widths, config.mask_estimator_depth) for _ in range(config.num_stems)
        )

    def forward(self, spec: Tensor) -> Tensor:
        """`(batch, channels, freq, frames)` complex → `(batch, stems, channels, freq, frames)` complex.

        Axes in the rearrange patterns below:
            b - batch            c - audio channel (2 for stereo)    f - STFT bin (1025)
            t - frame (time)     p - real/imaginary part             k - band (62)
            d - feature (dim)    n - stem
        """
        channels = self.config.audio_channels
        if spec.shape[1] != channels or spec.shape[2] != N_FFT // 2 + 1:
            raise ValueError(f"expected (batch, {channels}, {N_FFT // 2 + 1}, frames), got {tuple(spec.shape)}")
        # Frequency outer, channel inner, (real, imag) fastest: feature index (f·C + c)·2 + p (official-model.md §2.1).
        x = self.band_split(rearrange(torch.view_as_real(spec), "b c f t p -> b t (f c p)"))

        batch, frames, bands, _ = x.shape
        for time_block, band_block in self.layers:
            x = rearrange(x, "b t k d -> (b k) t d")
            x = time_block(x)
            x = rearrange(x, "(b k) t d -> (b t) k d", b=batch)
            x = band_block(x)
            x = rearrange(x, "(b t) k d -> b t k d", b=batch)

        x = self.final_norm(x)
        masks = torch.stack([estimator(x) for estimator in self.mask_estimators], dim=1)  # (b n t (f c p))
        # The complex masks are multiplied in the masks' own (t, f, c) order: no copy of either operand.
        masks = torch.view_as_complex(
            rearrange(masks.float(), "b n t (f c p) -> b n t f c p", c=channels, p=COMPLEX_PARTS)
        )
        separated = masks * rearrange(spec, "b c f t -> b 1 t f c")
        return rearrange(separated, "b n t f c -> b n c f t")

    def set_block_elements(self, elements: int | None) -> None:
        """Run inference (no autograd) on blocks of about `elements` (step × d_inner) activations per
        bidirectional Mamba, None for whole batches (the default): a CPU speed knob, the same result."""
        for module in self.modules():
            if isinstance(module, BidirectionalMamba):
                module.block_elements = elements

    def separate_waveform(self, waveform: Tensor) -> Tensor:
        """One chunk, waveform in and out: `(batch, channels, samples)` → `(batch, stems, channels, samples)`."""
        return istft(self(stft(waveform)), length=waveform.shape[-1])

    @classmethod
    def _from_pretrained(cls, *, strict: bool = True, **kwargs):  # type: ignore[override]
        """Load Hub-format weights strictly by default (the mixin defaults to `strict=False`)."""
        return super()._from_pretrained(strict=strict, **kwargs)


PRESETS: dict[str, BSMamba2Config] = {
    "released": BSMamba2Config(),  # dim 256, depth 6: the paper's model, 48.1 M parameters
    "dim128-depth2": BSMamba2Config(dim=128, depth=2),  # the size of the official parity fixture
    "dim64-depth2": BSMamba2Config(dim=64, depth=2),
    # Small enough to train on a CPU and to separate 8x faster than real time on 2 cores (bench_model.py).
    "demo": BSMamba2Config(dim=48, depth=2, mamba_expand=2, mamba_d_state=32, mamba_headdim=32),
}
"""Named configurations for training (`scripts/train.py --preset`) and the benchmarks."""
