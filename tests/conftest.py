"""What the tests share: the official parity fixture, one tiny model config, a test song, a fast app service.

Tests import the constants and helpers with `from conftest import ...` (pytest puts this folder on sys.path)
and use the fixtures by name.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from model.bsmamba2 import BSMamba2, BSMamba2Config
from model.stft import SAMPLE_RATE
from model.weights.pretrained import LoadedModel
from ui.config import AppConfig
from ui.service import SeparationService

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES_ENV = "BSMAMBA2_FIXTURES"
"""The folder that holds `official-small/`; by default `<repo>/../shared/fixtures`, where CI lays shared/."""

TINY_CONFIG = BSMamba2Config(dim=16, depth=1, mamba_d_state=16, mamba_headdim=16)
"""The one small network of the tests: 0.7 M parameters, a fraction of a second per short chunk."""
# One-second chunks keep a random model's CPU time to about a second per test song on a busy machine.
TEST_CHUNK_SECONDS = 1.0
TEST_SONG_SECONDS = 2.0
VOICE_HZ = 330.0
BASS_HZ = 55.0


def official_fixture_path() -> Path:
    """`$BSMAMBA2_FIXTURES/official-small`, else `<repo>/../shared/fixtures/official-small`."""
    return Path(os.environ.get(FIXTURES_ENV, REPO_ROOT.parent / "shared" / "fixtures")) / "official-small"


def tiny_model(seed: int = 0) -> BSMamba2:
    """A random BSMamba2 of `TINY_CONFIG`, the same for the same seed."""
    torch.manual_seed(seed)
    return BSMamba2(TINY_CONFIG).eval()


def tiny_service(**config: object) -> SeparationService:
    """An app service with the tiny model injected (no weights on disk needed) and short chunks."""
    settings = {"chunk_seconds": TEST_CHUNK_SECONDS, **config}
    loaded = LoadedModel(tiny_model(), "tiny random test model", "local folder")
    return SeparationService(AppConfig(**settings), loaded=loaded)  # type: ignore[arg-type]


def write_test_song(
    path: Path, seconds: float = TEST_SONG_SECONDS, sample_rate: int = SAMPLE_RATE, channels: int = 2
) -> Path:
    """A quiet bass all along and a louder 'voice' tone in the middle half, as 16-bit PCM."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    voice = 0.4 * np.sin(2 * np.pi * VOICE_HZ * t) * ((t > seconds / 4) & (t < 3 * seconds / 4))
    mono = voice + 0.1 * np.sin(2 * np.pi * BASS_HZ * t)
    sf.write(path, np.repeat(mono[:, None], channels, axis=1).astype(np.float32), sample_rate, subtype="PCM_16")
    return path


def write_phrased_song(
    path: Path, phrases: list[tuple[float, float]], seconds: float, sample_rate: int = SAMPLE_RATE
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


@pytest.fixture(scope="session")
def official_fixture() -> Path:
    path = official_fixture_path()
    if not (path / "weights" / "last.ckpt").is_file():
        pytest.skip(f"official parity fixture not found at {path} (set {FIXTURES_ENV} to its parent folder)")
    return path


@pytest.fixture(scope="session")
def official_small_model(official_fixture: Path) -> BSMamba2:
    """The fixture's dim-128, depth-2 model, loaded once per session."""
    from model.weights.checkpoint import load_official_checkpoint

    model, _ = load_official_checkpoint(official_fixture / "weights" / "last.ckpt")
    return model


@pytest.fixture
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny_model()` saved as a Hub-format folder, for the CLI and the loaders."""
    folder = tmp_path_factory.mktemp("tiny-model")
    tiny_model().save_pretrained(folder)
    return folder
