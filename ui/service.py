"""One song in, stems, phrases, plots and a report out: the app's work, without any Gradio.

    service = SeparationService(AppConfig())               # loads the default model once
    result = service.separate("song.mp3", SeparationOptions(output_format="wav"))
    result.vocals_path, result.activity.segments, result.figures["activity"]

Every separation writes into its own fresh folder under the service's temporary root; finished results
are kept in a small LRU keyed by the upload's SHA-256, its name and the options, so asking again is
instant. The uploaded file is only read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from model.gate import GateSettings, apply_sparse_gate
from model.pretrained import LoadedModel, load_model
from model.separator import ACCOMPANIMENT, VOCALS, SeparationSettings, Separator
from model.separator import Progress as ChunkProgress
from ui.config import AppConfig
from ui.text import report_markdown, share_line
from ui.zerogpu import gpu_seconds, gpu_task
from utils.activity import VocalActivity, detect_vocal_activity
from utils.audio import (
    DEFAULT_BIT_DEPTHS,
    MODEL_SAMPLE_RATE,
    OUTPUT_FORMATS,
    DecodedAudio,
    load_audio,
    make_zip,
    output_extension,
    to_original_layout,
    write_audio,
)
from utils.errors import CheckpointError, SeparationError
from utils.plots import activity_figure, spectrogram_figure, waveform_figure
from utils.share import phrases_csv, plots_html

logger = logging.getLogger(__name__)

STEMS = (VOCALS, ACCOMPANIMENT)
DEFAULT_FORMAT = "flac"  # lossless at about half the size of WAV, and every current browser plays it
DEFAULT_BIT_DEPTH = DEFAULT_BIT_DEPTHS[DEFAULT_FORMAT]
OVERLAP_CHOICES = (0.0, 0.25, 0.5)
# Overlapping chunks are cross-faded, which hides the seams of the official hop = chunk; 25 % costs 1/3 more time.
# Measured with the demo model on a 40-s song: sample-to-sample steps near chunk borders are 1.24x those
# elsewhere without overlap, 0.84x with 25 % (no seam left), so the app defaults to 25 %; the CLI and the
# Separator keep the official 0 %.
DEFAULT_OVERLAP = 0.25
# Other checkpoints loaded on request (only when the deployment allows choosing one), besides the default.
EXTRA_MODELS_KEPT = 1
HASH_BLOCK_BYTES = 1 << 20
MAX_NAME_CHARS = 60
# Progress shares of a request: decoding, the network, finding phrases, writing files, drawing.
PROGRESS_DECODED = 0.05
PROGRESS_SEPARATED = 0.85
PROGRESS_ANALYSED = 0.88
PROGRESS_WRITTEN = 0.95
ACTIVITY_FILE = "activity.json"
REPORT_FILE = "report.md"
PLOTS_FILE = "plots.html"
PHRASES_FILE = "phrases.csv"
FIGURE_HEADINGS = {"activity": "Where the voice is", "waveform": "Waveforms: mixture (grey) and vocals",
                   "spectrogram": "Spectrograms"}

ProgressFn = Callable[[float, str], None]
"""`progress(fraction 0..1, what is happening)`."""


class SettingsError(SeparationError):
    """An option the app cannot honour (an unknown format, a checkpoint choice that is not allowed)."""


@dataclass(frozen=True)
class SeparationOptions:
    """What a user may choose for one separation."""

    output_format: str = DEFAULT_FORMAT
    bit_depth: int | None = DEFAULT_BIT_DEPTH  # None: the format's default; ignored for MP3
    overlap: float = DEFAULT_OVERLAP  # one of OVERLAP_CHOICES
    clean_up: bool = False  # attenuate the vocal stem outside the sung phrases
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
    duration_s: float
    device: str
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
            "processing_s": round(self.processing_s, 3),
            "realtime_factor": round(self.realtime_factor, 4),
            "model": self.model_description,
            "options": dataclasses.asdict(self.options),
            "warnings": list(self.warnings),
            "from_cache": self.from_cache,
        }


class ResultCache:
    """A thread-safe LRU of finished results; an evicted result's folder is deleted."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, SeparationResult] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> SeparationResult | None:
        with self._lock:
            result = self._entries.get(key)
            if result is None or not all(p.is_file() for p in (result.vocals_path, result.zip_path)):
                self._entries.pop(key, None)
                return None
            self._entries.move_to_end(key)
            return result

    def put(self, key: str, result: SeparationResult) -> None:
        with self._lock:
            self._entries[key] = result
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                _, old = self._entries.popitem(last=False)
                shutil.rmtree(old.folder, ignore_errors=True)

    def __len__(self) -> int:
        return len(self._entries)


class SeparationService:
    """The loaded model(s), the work folder and the result cache, shared by all requests."""

    def __init__(
        self, config: AppConfig = AppConfig(), checkpoint: str | None = None, *, loaded: LoadedModel | None = None
    ) -> None:
        """Load `checkpoint` (None: `$BSMAMBA2_CHECKPOINT` or the bundled demo) unless a model is `loaded`.

        A model that cannot be loaded does not stop the app: `load_error` says why, and separating says so.
        """
        self.config = config
        self.default_model: LoadedModel | None = loaded
        self.load_error: str | None = None
        if loaded is None:
            try:
                self.default_model = load_model(checkpoint)
            except CheckpointError as error:
                self.load_error = str(error)
            except Exception as error:  # a bug or an odd file; the page must still come up and say so
                logger.exception("loading the model failed")
                self.load_error = f"The model weights could not be loaded ({type(error).__name__}: {error})."
        if self.default_model is not None:
            logger.info("model loaded: %s", self.default_model.describe())
        else:
            logger.error("no model loaded: %s", self.load_error)
        self._extra_models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._models_lock = threading.Lock()
        self.work_root = Path(tempfile.mkdtemp(prefix="bsmamba2-app-"))
        self.cache = ResultCache(config.result_cache_size)

    def close(self) -> None:
        """Delete every file this service wrote."""
        shutil.rmtree(self.work_root, ignore_errors=True)

    def model_for(self, checkpoint: str = "") -> LoadedModel:
        """The default model for "", another checkpoint when the deployment allows it; CheckpointError if none."""
        checkpoint = checkpoint.strip()
        if not checkpoint or (self.default_model and checkpoint == self.default_model.source):
            if self.default_model is None:
                raise CheckpointError(f"The app has no model to separate with. {self.load_error}")
            return self.default_model
        if not self.config.allow_checkpoint_choice:
            raise SettingsError("This app only uses its own model; choosing another checkpoint is switched off.")
        with self._models_lock:
            if checkpoint not in self._extra_models:
                self._extra_models[checkpoint] = load_model(checkpoint)
                while len(self._extra_models) > EXTRA_MODELS_KEPT:
                    self._extra_models.popitem(last=False)
            self._extra_models.move_to_end(checkpoint)
            return self._extra_models[checkpoint]

    def separate(
        self, song_path: str | Path, options: SeparationOptions = SeparationOptions(), progress: ProgressFn | None = None
    ) -> SeparationResult:
        """Separate one uploaded file; raises SeparationError subclasses with messages for the user."""
        report = progress or (lambda fraction, message: None)
        options = options.validated()
        loaded = self.model_for(options.checkpoint)
        song_path = Path(song_path)
        song_name = safe_name(song_path.stem)
        key = cache_key(song_path, song_name, options, loaded.source)
        if (hit := self.cache.get(key)) is not None:
            logger.info("cache hit for %s", song_path.name)
            report(1.0, "Done (same file and settings as before)")
            return dataclasses.replace(hit, from_cache=True)

        report(0.0, "Reading the file")
        audio = load_audio(song_path, max_duration_s=self.config.max_duration_s)
        report(PROGRESS_DECODED, "Separating")

        def on_chunks(done: ChunkProgress) -> None:
            fraction = PROGRESS_DECODED + (PROGRESS_SEPARATED - PROGRESS_DECODED) * done.fraction
            report(fraction, f"Separating: chunk {done.chunks_done} of {done.chunks_total}")

        settings = SeparationSettings(chunk_seconds=self.config.chunk_seconds, overlap=options.overlap)
        started = time.perf_counter()
        stems, device = separate_on_device(loaded, settings, audio.waveform, on_chunks)
        processing_s = time.perf_counter() - started

        report(PROGRESS_SEPARATED, "Finding where the voice is")
        activity = detect_vocal_activity(stems[VOCALS], MODEL_SAMPLE_RATE, mixture=audio.waveform)
        if options.clean_up:
            stems = apply_sparse_gate(stems, activity, MODEL_SAMPLE_RATE, GateSettings())

        report(PROGRESS_ANALYSED, "Writing the stems")
        folder = self.work_root / uuid.uuid4().hex
        folder.mkdir()
        partial = dict(
            song_name=song_name, activity=activity, duration_s=audio.duration_s, device=device,
            processing_s=processing_s, model_description=loaded.describe(), options=options,
        )
        paths, write_warnings = _write_outputs(folder, song_name, stems, audio, options)
        warnings = (*audio.warnings, *write_warnings)
        (folder / ACTIVITY_FILE).write_text(json.dumps(activity.to_json(), indent=2))
        (folder / REPORT_FILE).write_text(report_markdown(**partial, source_format=audio.source_format,
                                                          warnings=warnings))

        report(PROGRESS_WRITTEN, "Drawing the plots")
        figures = make_figures(audio.waveform, stems[VOCALS], activity)
        zip_path = make_zip(folder / f"{song_name}_stems.zip", {
            paths[VOCALS].name: paths[VOCALS],
            paths[ACCOMPANIMENT].name: paths[ACCOMPANIMENT],
            ACTIVITY_FILE: folder / ACTIVITY_FILE,
            REPORT_FILE: folder / REPORT_FILE,
            **write_share_files(folder, song_name, audio.duration_s, activity, figures),
        })
        result = SeparationResult(
            **partial, folder=folder, vocals_path=paths[VOCALS], accompaniment_path=paths[ACCOMPANIMENT], zip_path=zip_path,
            activity_path=folder / ACTIVITY_FILE, report_path=folder / REPORT_FILE, warnings=warnings,
            figures=figures,
        )
        self.cache.put(key, result)
        report(1.0, "Done")
        logger.info("separated %s (%.1f s) in %.2f s on %s", song_path.name, audio.duration_s, processing_s, device)
        return result


def _gpu_duration(loaded: LoadedModel, settings: SeparationSettings, mixture: np.ndarray, progress=None) -> int:
    return gpu_seconds(mixture.shape[-1] / MODEL_SAMPLE_RATE)


@gpu_task(duration=_gpu_duration)
def separate_on_device(
    loaded: LoadedModel,
    settings: SeparationSettings,
    mixture: np.ndarray,
    progress: Callable[[ChunkProgress], None] | None = None,
) -> tuple[dict[str, np.ndarray], str]:
    """Run the network on the best device (a ZeroGPU slot on Spaces): `(2, n)` → stems `(2, n)`, device name."""
    separator = Separator(loaded.model, settings)
    return separator.separate(mixture, progress), str(separator.device)


def make_figures(mixture: np.ndarray, vocals: np.ndarray, activity: VocalActivity) -> dict[str, go.Figure]:
    """The three plots of a result, at the model's rate: `waveform`, `spectrogram`, `activity`."""
    return {
        "waveform": waveform_figure(mixture, vocals, MODEL_SAMPLE_RATE, activity),
        "spectrogram": spectrogram_figure(mixture, vocals, MODEL_SAMPLE_RATE),
        "activity": activity_figure(activity),
    }


def write_share_files(
    folder: Path, song_name: str, duration_s: float, activity: VocalActivity, figures: dict[str, go.Figure]
) -> dict[str, Path]:
    """The plots as one offline web page and the phrases as CSV, in `folder`: `{name in the zip: file}`."""
    page = plots_html({heading: figures[name] for name, heading in FIGURE_HEADINGS.items()},
                      title=f"{song_name}: vocals and accompaniment", notes=[share_line(song_name, duration_s, activity)])
    (folder / PLOTS_FILE).write_text(page, encoding="utf-8")
    (folder / PHRASES_FILE).write_text(phrases_csv(activity.segments), encoding="utf-8")
    return {PLOTS_FILE: folder / PLOTS_FILE, PHRASES_FILE: folder / PHRASES_FILE}


def _write_outputs(
    folder: Path, song_name: str, stems: dict[str, np.ndarray], audio: DecodedAudio, options: SeparationOptions
) -> tuple[dict[str, Path], tuple[str, ...]]:
    """Each stem at the upload's rate, channel count and length, in the chosen format."""
    paths: dict[str, Path] = {}
    warnings: list[str] = []
    for stem in STEMS:
        waveform = to_original_layout(stems[stem], audio.original_sample_rate, audio.original_channels,
                                      num_samples=audio.original_num_samples)
        path = folder / f"{song_name}_{stem}{output_extension(options.output_format)}"
        written = write_audio(path, waveform, audio.original_sample_rate, options.output_format, options.bit_depth)
        warnings.extend(f"{stem.capitalize()}: {warning}" for warning in written.warnings)
        paths[stem] = path
    return paths, tuple(warnings)


def safe_name(stem: str) -> str:
    """A file-name-safe version of the upload's name, for the downloads (`song name_vocals.flac`)."""
    cleaned = re.sub(r"[^\w\-. ()]+", "_", stem).strip(" ._") or "song"
    return cleaned[:MAX_NAME_CHARS]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def cache_key(song_path: Path, song_name: str, options: SeparationOptions, model_source: str) -> str:
    """Same bytes, same download name, same options and model → same result."""
    try:
        content = file_sha256(song_path)
    except OSError:
        content = f"unreadable:{uuid.uuid4().hex}"  # never a hit; load_audio reports the problem
    return json.dumps([content, song_name, dataclasses.asdict(options), model_source], sort_keys=True)
