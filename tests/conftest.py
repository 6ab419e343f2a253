"""Shared test fixtures: where the official parity fixture lives, and small models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_FIXTURE_ENV = "BSMAMBA2_FIXTURES"


def official_fixture_path() -> Path:
    """`$BSMAMBA2_FIXTURES`, else `<repo>/../shared/fixtures/official-small` (where CI lays shared/)."""
    return Path(os.environ.get(OFFICIAL_FIXTURE_ENV, REPO_ROOT.parent / "shared" / "fixtures" / "official-small"))


@pytest.fixture(scope="session")
def official_fixture() -> Path:
    path = official_fixture_path()
    if not (path / "weights" / "last.ckpt").is_file():
        pytest.skip(f"official parity fixture not found at {path} (set {OFFICIAL_FIXTURE_ENV})")
    return path


@pytest.fixture(scope="session")
def official_small_model(official_fixture: Path):
    """The fixture's dim-128, depth-2 model, loaded once per session."""
    from model.checkpoint import load_official_checkpoint

    model, _ = load_official_checkpoint(official_fixture / "weights" / "last.ckpt")
    return model
