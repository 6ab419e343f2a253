"""What one request of the app asks for and what it produced: shared by the service, the texts and the
callbacks (a module of its own, so that none of them imports another only for these types)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go

from utils.activity import VocalActivity
from utils.audio import DEFAULT_BIT_DEPTHS, OUTPUT_FORMATS
from utils.errors import SeparationError

DEFAULT_FORMAT = "flac"  # lossless at about half the size of WAV, and every current browser plays it
DEFAULT_BIT_DEPTH = DEFAULT_BIT_DEPTHS[DEFAULT_FORMAT]
OVERLAP_CHOICES = (0.0, 0.25, 0.5)
# Overlapping chunks are cross-faded, which hides the seams of the official hop = chunk; 25 % costs 1/3 more time.
# Measured with the demo model on a 40-s song: sample-to-sample steps near chunk borders are 1.24x those
# elsewhere without overlap, 0.84x with 25 % (no seam left), so the app defaults to 25 %; the CLI and the
# Separator keep the official 0 %.
DEFAULT_OVERLAP = 0.25


class SettingsError(SeparationError):
    """An option the app cannot honour (an unknown format, a checkpoint choice that is not allowed)."""


@dataclass(frozen=True)
class SeparationOptions:
    """What a user may choose for one separation."""

    output_format: str = DEFAULT_FORMAT
    bit_depth: int | None = DEFAULT_BIT_DEPTH  # None: the format's default; ignored for MP3
    overlap: float = DEFAULT_OVERLAP  # one of OVERLAP_CHOICES
    clean_up: bool = True  # silence the vocal stem between the sung phrases (the pipeline's default)
    checkpoint: str = ""  # "" = the model loaded at start-up

    def validated(self) -> SeparationOptions:
        """The same options with defaults filled in; raises SettingsError with a readable message."""
        fmt = (self.output_format or DEFAULT_FORMAT).strip().lower()
        if fmt not in OUTPUT_FORMATS:
            raise SettingsError(f"'{self.output_format}' is not an output format we write; choose one of "
                                f"{', '.join(OUTPUT_FORMATS)}.")
        depths = OUTPUT_FORMATS[fmt]
        depth = None if not depths else int(self.bit_depth) if self.bit_depth else DEFAULT_BIT_DEPTHS[fmt]
        if depths and depth not in depths:
            raise SettingsError(f"{fmt.upper()} files can be {', '.join(map(str, depths))}-bit, not {depth}-bit.")
        overlap = float(self.overlap)
        if not any(abs(overlap - choice) < 1e-9 for choice in OVERLAP_CHOICES):
            raise SettingsError(f"The chunk overlap must be one of {', '.join(f'{c:.0%}' for c in OVERLAP_CHOICES)}.")
        return SeparationOptions(fmt, depth, overlap, bool(self.clean_up), (self.checkpoint or "").strip())


@dataclass(frozen=True)
class SeparationResult:
    """Everything one separation produced. Paths live in `folder`, which the cache deletes on eviction."""

    song_name: str
    folder: Path
    vocals_path: Path
    accompaniment_path: Path
    zip_path: Path
    activity_path: Path
    report_path: Path
    activity: VocalActivity
    source_format: str  # e.g. "MP3 (mp3)"
    duration_s: float
    device: str
    precision: str  # what the network ran in: "fp32", "bf16" (the CPU fast path) or "fp16"
    voice_detector: str  # who found the phrases: "both", "with-stem", "mixture-only" or "level"
    processing_s: float  # the network's wall time, decoding and writing excluded
    model_description: str
    options: SeparationOptions
    warnings: tuple[str, ...]
    figures: dict[str, go.Figure] = field(repr=False)
    from_cache: bool = False

    @property
    def realtime_factor(self) -> float:
        """Processing time over song length: 0.1 means ten times faster than real time."""
        return self.processing_s / self.duration_s if self.duration_s > 0 else 0.0

    def api_payload(self) -> dict:
        """The JSON the API endpoint returns beside the stems: phrases, summary and how it was made."""
        return {
            **self.activity.to_json(),
            "duration_s": round(self.duration_s, 3),
            "device": self.device,
            "precision": self.precision,
            "voice_detector": self.voice_detector,
            "processing_s": round(self.processing_s, 3),
            "realtime_factor": round(self.realtime_factor, 4),
            "model": self.model_description,
            "options": dataclasses.asdict(self.options),
            "warnings": list(self.warnings),
            "from_cache": self.from_cache,
        }


