"""One song in, stems, phrases, plots and a report out: the app's work, without any Gradio.

    service = SeparationService(AppConfig())               # loads the default model once
    result = service.separate("song.mp3", SeparationOptions(output_format="wav"))
    result.vocals_path, result.activity.segments, result.figures["activity"]

The separation itself is `model.inference.pipeline.separate_file`, the same as the CLI's. Every request
writes into its own fresh folder under the service's temporary root; finished results are kept in a small
LRU keyed by the upload's SHA-256, its name and the options, so asking again is instant. The uploaded file
is only read.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path

import plotly.graph_objects as go

from model.inference.pipeline import OutputSettings, ProgressFn, SongResult, SongSettings, separate_file
from model.inference.pipeline import PROGRESS_WRITTEN
from model.inference.separator import ACCOMPANIMENT, VOCALS, SeparationSettings, Separator
from model.weights.pretrained import LoadedModel, load_model
from ui.config import AppConfig
from ui.results import SeparationOptions, SeparationResult, SettingsError
from ui.text import report_markdown, share_line
from ui import zerogpu
from ui.zerogpu import gpu_seconds, gpu_task
from utils.activity import VocalActivity
from utils.audio import announced_duration_s, make_zip, output_extension
from utils.cleanup import GateSettings
from utils.errors import CheckpointError
from utils.files import file_sha256, safe_name
from utils.plots import activity_figure, sketch_spectrogram_figure, sketch_waveform_figure
from utils.share import phrases_csv, plots_html
from utils.sketch import SongSketch

logger = logging.getLogger(__name__)

# Other checkpoints loaded on request (only when the deployment allows choosing one), besides the default.
EXTRA_MODELS_KEPT = 1
ACTIVITY_FILE = "activity.json"
REPORT_FILE = "report.md"
PLOTS_FILE = "plots.html"
PHRASES_FILE = "phrases.csv"
FIGURE_HEADINGS = {"activity": "Where the voice is", "waveform": "Waveforms: mixture (grey) and vocals",
                   "spectrogram": "Spectrograms"}


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

    def separation_settings(self, overlap: float = 0.0) -> SeparationSettings:
        """How this app runs the network: its chunk length, precision and compile switch, and `overlap`."""
        return SeparationSettings(chunk_seconds=self.config.chunk_seconds, overlap=overlap,
                                  precision=self.config.precision, compile=self.config.compile)

    def warm_up(self) -> float:
        """Compile the default model for this CPU now when `config.compile` asks for it, so that the first
        song does not wait; returns the seconds it took (0.0: nothing to do). Not on ZeroGPU, where the
        model runs on a GPU attached per request."""
        if not self.config.compile or self.default_model is None or zerogpu.spaces is not None:
            return 0.0
        started = time.perf_counter()
        separator = Separator(self.default_model.model, self.separation_settings())
        separator.warm_up()
        seconds = time.perf_counter() - started if separator.compiled else 0.0
        logger.info("model warmed up for %s in %.1f s (compiled: %s)", separator.device, seconds, separator.compiled)
        return seconds

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

        folder = self.work_root / uuid.uuid4().hex
        folder.mkdir()
        extension = output_extension(options.output_format)
        targets = {stem: folder / f"{song_name}_{stem}{extension}" for stem in (VOCALS, ACCOMPANIMENT)}
        separation = self.separation_settings(options.overlap)
        song_settings = SongSettings(
            output=OutputSettings(options.output_format, options.bit_depth),
            clean_up=GateSettings() if options.clean_up else None,
            max_duration_s=self.config.max_duration_s,
            voice_detector=self.config.voice_detector,
            sketch=True,
        )
        try:
            song = separate_on_device(loaded, separation, song_path, targets, song_settings, report, self.work_root)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

        report(PROGRESS_WRITTEN, "Drawing the plots")
        result = SeparationResult(
            song_name=song_name, folder=folder, vocals_path=targets[VOCALS],
            accompaniment_path=targets[ACCOMPANIMENT], zip_path=folder / f"{song_name}_stems.zip",
            activity_path=folder / ACTIVITY_FILE, report_path=folder / REPORT_FILE, activity=song.activity,
            source_format=song.audio.source_format, duration_s=song.audio.duration_s, device=song.device,
            precision=song.precision, voice_detector=song.voice_detector, processing_s=song.processing_s, model_description=loaded.describe(), options=options,
            warnings=song.warnings, figures=make_figures(song.sketch, song.activity),
        )
        run = {"device": song.device, "precision": song.precision, "voice_detector": song.voice_detector,
               "model": loaded.describe()}
        result.activity_path.write_text(json.dumps({**song.activity.to_json(), "run": run}, indent=2))
        result.report_path.write_text(report_markdown(result))
        make_zip(result.zip_path, {
            path.name: path for path in (result.vocals_path, result.accompaniment_path)
        } | {ACTIVITY_FILE: result.activity_path, REPORT_FILE: result.report_path}
          | write_share_files(folder, song_name, result.duration_s, result.activity, result.figures))
        self.cache.put(key, result)
        report(1.0, "Done")
        logger.info("separated %s (%.1f s) in %.2f s on %s", song_path.name, result.duration_s,
                    result.processing_s, result.device)
        return result


def _gpu_duration(loaded: LoadedModel, separation: SeparationSettings, song_path: Path, *args: object) -> int:
    return gpu_seconds(announced_duration_s(song_path) or 0.0)


@gpu_task(duration=_gpu_duration)
def separate_on_device(
    loaded: LoadedModel,
    separation: SeparationSettings,
    song_path: Path,
    targets: dict[str, Path],
    settings: SongSettings,
    progress: ProgressFn,
    scratch_root: Path,
) -> SongResult:
    """The pipeline on the best device (a ZeroGPU slot on Spaces): the song's stems written to `targets`."""
    separator = Separator(loaded.model, separation)
    return separate_file(song_path, separator, targets, settings, progress, scratch_root=scratch_root)


def make_figures(sketch: SongSketch, activity: VocalActivity) -> dict[str, go.Figure]:
    """The three plots of a result: `waveform`, `spectrogram`, `activity`."""
    return {
        "waveform": sketch_waveform_figure(sketch, activity),
        "spectrogram": sketch_spectrogram_figure(sketch),
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


def cache_key(song_path: Path, song_name: str, options: SeparationOptions, model_source: str) -> str:
    """Same bytes, same download name, same options and model → same result."""
    try:
        content = file_sha256(song_path)
    except OSError:
        content = f"unreadable:{uuid.uuid4().hex}"  # never a hit; decoding reports the problem
    return json.dumps([content, song_name, dataclasses.asdict(options), model_source], sort_keys=True)
