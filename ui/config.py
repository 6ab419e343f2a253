"""Limits and switches of the app, read once from the environment (a Space sets them as variables)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from model.inference.pipeline import AUTO_DETECTOR
from model.inference.separator import OFFICIAL_CHUNK_SECONDS
from model.precision import AUTO, PRECISIONS

MAX_MINUTES_ENV = "BSMAMBA2_MAX_MINUTES"
ALLOW_CHECKPOINT_CHOICE_ENV = "BSMAMBA2_ALLOW_CHECKPOINT_CHOICE"
EXAMPLES_DIR_ENV = "BSMAMBA2_EXAMPLES_DIR"
PRECISION_ENV = "BSMAMBA2_PRECISION"
COMPILE_ENV = "BSMAMBA2_COMPILE"

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EXAMPLES_DIR = REPO_ROOT / "examples"
# Songs longer than this are refused before decoding (a Space has limited GPU minutes per request).
DEFAULT_MAX_MINUTES = 15.0
# An upload limit Gradio enforces before our code runs; a 15-min 24-bit/48 kHz stereo WAV is ~260 MB, but
# almost every upload is compressed, and a smaller limit protects a shared Space.
MAX_FILE_SIZE = "200mb"
# Finished separations kept for instant repeats (each holds its stem files on disk and its figures in memory).
RESULT_CACHE_SIZE = 4
# Waiting requests beyond this are turned away with "the queue is full" instead of waiting for ever.
QUEUE_MAX_SIZE = 16
# One separation at a time per replica: the model is shared, and one song already fills the GPU or the CPU.
CONCURRENCY_LIMIT = 1
# Gradio's own temporary files (uploads, copies of results): every 30 min, delete those older than 2 h.
DELETE_CACHE = (1800, 7200)
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class AppConfig:
    """What a deployment may change; `from_env()` reads it, tests build it directly."""

    max_minutes: float = DEFAULT_MAX_MINUTES
    allow_checkpoint_choice: bool = False
    examples_dir: Path = DEFAULT_EXAMPLES_DIR
    result_cache_size: int = RESULT_CACHE_SIZE
    chunk_seconds: float = OFFICIAL_CHUNK_SECONDS  # tests use shorter chunks to stay fast
    precision: str = AUTO  # see SeparationSettings; "fp32" is the reference, "bf16" the CPU fast path
    voice_detector: str = AUTO_DETECTOR  # who finds the phrases (model.inference.pipeline.VOICE_DETECTORS)
    compile: bool = False  # CPU: compile the Mamba2 layers (model.compile), warmed up when the app starts

    @property
    def max_duration_s(self) -> float:
        return self.max_minutes * 60.0

    @classmethod
    def from_env(cls) -> AppConfig:
        """Read `BSMAMBA2_MAX_MINUTES`, `BSMAMBA2_ALLOW_CHECKPOINT_CHOICE`, `BSMAMBA2_EXAMPLES_DIR`,
        `BSMAMBA2_PRECISION` and `BSMAMBA2_COMPILE` (on unless "0", "false", "no" or "off")."""
        raw_minutes = os.environ.get(MAX_MINUTES_ENV, "").strip()
        try:
            max_minutes = float(raw_minutes) if raw_minutes else DEFAULT_MAX_MINUTES
        except ValueError as error:
            raise ValueError(f"{MAX_MINUTES_ENV} must be a number of minutes, got {raw_minutes!r}") from error
        if max_minutes <= 0:
            raise ValueError(f"{MAX_MINUTES_ENV} must be positive, got {max_minutes}")
        allow = os.environ.get(ALLOW_CHECKPOINT_CHOICE_ENV, "").strip().lower() in TRUE_WORDS
        examples = Path(os.environ.get(EXAMPLES_DIR_ENV) or DEFAULT_EXAMPLES_DIR)
        precision = os.environ.get(PRECISION_ENV, "").strip().lower() or AUTO
        if precision != AUTO and precision not in PRECISIONS:
            raise ValueError(f"{PRECISION_ENV} must be {AUTO!r} or one of {sorted(PRECISIONS)}, got {precision!r}")
        compiled = os.environ.get(COMPILE_ENV, "").strip().lower() not in FALSE_WORDS
        return cls(max_minutes=max_minutes, allow_checkpoint_choice=allow, examples_dir=examples, precision=precision,
                   compile=compiled)
