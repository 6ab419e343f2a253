"""The official training loss (official-model.md §8): time-domain L1 plus a 5-resolution complex STFT L1.

    loss = 10 · mean|ŷ − y| + Σ_r mean|S_r(ŷ) − S_r(y)|

with S_r a centred, reflect-padded, unnormalised Hann STFT of hop 147 and window 4096/2048/1024/512/256
(n_fft = max(window, 2048)); |·| of a complex difference is its modulus. The target is first sent through the
model's own STFT round trip, as the official code does.
"""

from __future__ import annotations

import torch
from torch import Tensor

from model.stft import istft, stft

TIME_LOSS_WEIGHT = 10.0
MULTI_STFT_HOP = 147
MULTI_STFT_WINDOWS = (4096, 2048, 1024, 512, 256)
MULTI_STFT_MIN_NFFT = 2048


def multi_resolution_stft_l1(estimate: Tensor, target: Tensor) -> Tensor:
    """Σ over resolutions of the mean complex modulus of the STFT difference. Inputs `(..., samples)`."""
    flat_estimate = estimate.reshape(-1, estimate.shape[-1]).float()
    flat_target = target.reshape(-1, target.shape[-1]).float()
    total = flat_estimate.new_zeros(())
    for window_length in MULTI_STFT_WINDOWS:
        window = torch.hann_window(window_length, device=estimate.device)
        n_fft = max(window_length, MULTI_STFT_MIN_NFFT)
        spec = {
            name: torch.stft(
                signal, n_fft, MULTI_STFT_HOP, window_length, window,
                center=True, pad_mode="reflect", normalized=False, return_complex=True,
            )
            for name, signal in (("estimate", flat_estimate), ("target", flat_target))
        }
        total = total + (spec["estimate"] - spec["target"]).abs().mean()
    return total


def round_trip(target: Tensor) -> Tensor:
    """The target as the model's STFT/iSTFT pair reproduces it: `(..., samples)` → same shape."""
    return istft(stft(target), length=target.shape[-1])


def separation_loss(estimate: Tensor, target: Tensor) -> Tensor:
    """The official loss for `(batch, stems, channels, samples)` waveforms."""
    target = round_trip(target)
    time_l1 = (estimate.float() - target.float()).abs().mean()
    return TIME_LOSS_WEIGHT * time_l1 + multi_resolution_stft_l1(estimate, target)
