"""The STFT pair of the official featurizer (official-model.md §1), with `torch.stft`/`torch.istft` only.

torchaudio's `Spectrogram(n_fft=2048, win_length=2048, hop_length=441, power=None)` and its inverse are thin
wrappers over these calls: periodic Hann window, centred with reflect padding, no normalisation, one-sided.
"""

from __future__ import annotations

import torch
from torch import Tensor

N_FFT = 2048
HOP_LENGTH = 441
WIN_LENGTH = 2048
SAMPLE_RATE = 44100
"""The model's audio: 44.1 kHz (MUSDB18-HQ, official test and SAD configs)."""
AUDIO_CHANNELS = 2
"""Stereo, left/right as read from the file (no mid/side)."""


def _window(device: torch.device) -> Tensor:
    return torch.hann_window(WIN_LENGTH, periodic=True, device=device)


def stft(waveform: Tensor) -> Tensor:
    """`(..., samples)` float → `(..., 1025, 1 + samples // 441)` complex64."""
    lead = waveform.shape[:-1]
    spec = torch.stft(
        waveform.reshape(-1, waveform.shape[-1]).float(),
        N_FFT,
        HOP_LENGTH,
        WIN_LENGTH,
        _window(waveform.device),
        center=True,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    return spec.reshape(*lead, *spec.shape[-2:])


def istft(spec: Tensor, length: int | None = None) -> Tensor:
    """`(..., 1025, frames)` complex → `(..., samples)` float32.

    Without `length` the output has `441 · (frames − 1)` samples, as the official inverse featurizer (which is
    called without a length) produces.
    """
    lead = spec.shape[:-2]
    wave = torch.istft(
        spec.reshape(-1, *spec.shape[-2:]),
        N_FFT,
        HOP_LENGTH,
        WIN_LENGTH,
        _window(spec.device),
        center=True,
        normalized=False,
        onesided=True,
        length=length,
    )
    return wave.reshape(*lead, wave.shape[-1])
