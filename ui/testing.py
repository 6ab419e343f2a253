"""Helpers for the app's tests: a tiny random model, a short test song, a service that runs in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from model.bsmamba2 import BSMamba2, BSMamba2Config
from model.pretrained import LoadedModel
from ui.config import AppConfig
from ui.service import SeparationService

TINY_CONFIG = BSMamba2Config(dim=16, depth=1, mamba_d_state=16, mamba_headdim=16)
# One-second chunks keep a random model's CPU time to about a second per test song on a busy machine.
TEST_CHUNK_SECONDS = 1.0
TEST_SONG_SECONDS = 2.0
TEST_SAMPLE_RATE = 44100
VOICE_HZ = 330.0
BASS_HZ = 55.0


def tiny_model(seed: int = 0) -> BSMamba2:
    """A random BSMamba2 small enough to run in a fraction of a second per chunk."""
    torch.manual_seed(seed)
    return BSMamba2(TINY_CONFIG).eval()


def tiny_service(**config: object) -> SeparationService:
    """A service with the tiny model injected (no weights on disk needed) and short chunks."""
    settings = {"chunk_seconds": TEST_CHUNK_SECONDS, **config}
    loaded = LoadedModel(tiny_model(), "tiny random test model", "local folder")
    return SeparationService(AppConfig(**settings), loaded=loaded)  # type: ignore[arg-type]


def write_test_song(
    path: Path, seconds: float = TEST_SONG_SECONDS, sample_rate: int = TEST_SAMPLE_RATE, channels: int = 2
) -> Path:
    """A quiet bass all along and a louder 'voice' tone in the middle half, as 16-bit PCM."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    voice = 0.4 * np.sin(2 * np.pi * VOICE_HZ * t) * ((t > seconds / 4) & (t < 3 * seconds / 4))
    mono = voice + 0.1 * np.sin(2 * np.pi * BASS_HZ * t)
    sf.write(path, np.repeat(mono[:, None], channels, axis=1).astype(np.float32), sample_rate, subtype="PCM_16")
    return path


def write_phrased_song(
    path: Path, phrases: list[tuple[float, float]], seconds: float, sample_rate: int = TEST_SAMPLE_RATE
) -> Path:
    """A stereo 'voice' tone during `phrases` `[(start_s, end_s)]` and silence elsewhere, as 16-bit PCM.

    Even the random test model keeps silence silent, so these phrases are the ones the app finds (give or
    take half an activity frame).
    """
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    sung = np.zeros(t.size, dtype=bool)
    for start, end in phrases:
        sung |= (t >= start) & (t < end)
    mono = 0.4 * np.sin(2 * np.pi * VOICE_HZ * t) * sung
    sf.write(path, np.repeat(mono[:, None], 2, axis=1).astype(np.float32), sample_rate, subtype="PCM_16")
    return path
