"""The functions Gradio calls. Each turns widget values into `SeparationOptions`, runs the service, feeds
`gr.Progress`, and turns failures into `gr.Error`: a `SeparationError` shows its own sentence, anything else
is logged with its traceback and shown as a generic apology (the server keeps running).
"""

from __future__ import annotations

import inspect
import logging
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from model.inference.pipeline import ProgressFn
from ui.results import DEFAULT_FORMAT, SeparationOptions, SeparationResult
from ui.service import SeparationService
from ui.text import segment_rows, summary_markdown
from utils.audio import AUDIO_EXTENSIONS, DEFAULT_BIT_DEPTHS, OUTPUT_FORMATS
from utils.errors import SeparationError

logger = logging.getLogger(__name__)
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])

NO_INPUT_MESSAGE = "Upload a song (or record one) first, then press Separate."
GENERIC_ERROR_MESSAGE = (
    "Something went wrong while separating this file. Please try again, or convert it to WAV or MP3 and "
    "upload that; if it keeps happening, let us know in the Community tab."
)


@contextmanager
def user_errors() -> Iterator[None]:
    """Re-raise every failure as a `gr.Error` a musician understands."""
    try:
        yield
    except gr.Error:
        raise
    except SeparationError as error:
        logger.info("refused: %s", error)
        raise gr.Error(str(error), print_exception=False) from error
    except Exception as error:
        logger.exception("separation failed")
        raise gr.Error(GENERIC_ERROR_MESSAGE, print_exception=False) from error


def pick_input(recorded_or_uploaded: str | None, any_file: str | None) -> str:
    """The song to separate: the file box when it holds one, else the player; gr.Error when both are empty."""
    song = any_file or recorded_or_uploaded
    if not song:
        raise gr.Error(NO_INPUT_MESSAGE, print_exception=False)
    return str(song)


def bit_depth_choices(output_format: str) -> dict[str, Any]:
    """An update for the bit-depth radio: the format's depths and default, hidden for MP3."""
    depths = OUTPUT_FORMATS.get(output_format, ())
    return gr.update(
        choices=list(depths), value=DEFAULT_BIT_DEPTHS.get(output_format), visible=bool(depths)
    )


def options_from_widgets(
    output_format: str, bit_depth: int | None, overlap: float, clean_up: bool, checkpoint: str
) -> SeparationOptions:
    """The settings widgets' values as `SeparationOptions` (empty widgets: the defaults)."""
    return SeparationOptions(
        output_format=output_format or DEFAULT_FORMAT, bit_depth=bit_depth, overlap=overlap,
        clean_up=bool(clean_up), checkpoint=checkpoint or "",
    )


def progress_reporter(progress: gr.Progress | None) -> ProgressFn | None:
    """`gr.Progress` as the service's `progress(fraction, message)`."""
    return None if progress is None else (lambda fraction, message: progress(fraction, desc=message))


def only_one_input() -> None:
    """Clears the other song input when one receives a file, so it is clear which one is separated."""
    return None


API_ARGUMENTS = """Args:
    song: the song, an audio or video file (WAV, FLAC, MP3, OGG, M4A, MP4, WebM, MKV…), as a URL.
    output_format: format of the stems: "flac" (default), "wav" or "mp3".
    bit_depth: bits per sample of WAV (16, 24 or 32) or FLAC (16 or 24); ignored for MP3.
    overlap: chunk overlap, 0.0, 0.25 (default) or 0.5; more overlap hides chunk seams but is slower.
    clean_up: true (the default) to silence the vocals between sung phrases, moving that sound to the
        accompaniment.
    checkpoint: leave empty for the app's model."""
"""The arguments every separating API endpoint takes, as Gradio reads them for the API page and MCP schema."""


def api_docstring(summary: str, returns: str) -> Callable[[Endpoint], Endpoint]:
    """Give an API endpoint its docstring: `summary`, `API_ARGUMENTS` and `returns` (Google style, which
    Gradio parses into the API page and the MCP tool's description and argument schema)."""

    def document(endpoint: Endpoint) -> Endpoint:
        endpoint.__doc__ = f"{summary}\n\n{API_ARGUMENTS}\n\nReturns:\n{textwrap.indent(inspect.cleandoc(returns), '    ')}"
        return endpoint

    return document


class Callbacks:
    """Event handlers bound to one shared `SeparationService`."""

    def __init__(self, service: SeparationService) -> None:
        self.service = service

    def run(
        self, song: str, output_format: str, bit_depth: int | None, overlap: float, clean_up: bool,
        checkpoint: str, progress: gr.Progress | None = None,
    ) -> SeparationResult:
        """Separate `song` with the given widget values; raises gr.Error with a readable message."""
        options = options_from_widgets(output_format, bit_depth, overlap, clean_up, checkpoint)
        with user_errors():
            return self.service.separate(song, options, progress_reporter(progress))

    def separate(
        self,
        recorded_or_uploaded: str | None,
        any_file: str | None,
        output_format: str,
        bit_depth: int | None,
        overlap: float,
        clean_up: bool,
        checkpoint: str,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple:
        """The Separate button: players, downloads, summary, phrase table and the three plots."""
        song = pick_input(recorded_or_uploaded, any_file)
        return page_outputs(self.run(song, output_format, bit_depth, overlap, clean_up, checkpoint, progress))

    @api_docstring(
        "Separate a song into its vocals and its accompaniment (BSMamba2), and find where the voice sings.",
        returns="""The vocals file (URL), the accompaniment file (URL), and JSON with the sung phrases as
            [start, end] pairs in seconds ("segments"), a "summary" (voiced percent, phrase count, longest
            silence), the song's duration and how it was separated.""",
    )
    def separate_api(
        self,
        song: str | None,
        output_format: str,
        bit_depth: int | None,
        overlap: float,
        clean_up: bool,
        checkpoint: str,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[str, str, dict]:
        song = pick_input(None, song)
        result = self.run(song, output_format, bit_depth, overlap, clean_up, checkpoint, progress)
        return str(result.vocals_path), str(result.accompaniment_path), result.api_payload()


def page_outputs(result: SeparationResult, offset_s: float = 0.0) -> tuple:
    """What the page shows of a result: two players, three downloads, summary, phrase table, three plots.

    `offset_s` places the phrases of a preview at their time in the song.
    """
    vocals, accompaniment = str(result.vocals_path), str(result.accompaniment_path)
    return (
        vocals,
        accompaniment,
        vocals,
        accompaniment,
        str(result.zip_path),
        summary_markdown(result),
        segment_rows(result.activity, offset_s),
        result.figures["waveform"],
        result.figures["spectrogram"],
        result.figures["activity"],
    )


def existing_examples(folder: Path) -> list[list[str]]:
    """Example songs in `folder` (audio files, sorted), one row each; empty if the folder is missing."""
    if not folder.is_dir():
        return []
    return [[str(path)] for path in sorted(folder.iterdir()) if path.suffix.lower() in AUDIO_EXTENSIONS]
