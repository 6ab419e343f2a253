"""The Gradio functions of the listening tools: Separate and Preview with everything the page shows, the
`/preview` endpoint, phrase jumps, the mixer. Failures become `gr.Error` as in `ui/callbacks.py`.

Every result on the page leaves a `Playback` in a `gr.State`; the phrase table, the phrase buttons and the
mixer work from it, so none of them separates again.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ui.callbacks import (
    Callbacks,
    api_docstring,
    options_from_widgets,
    page_outputs,
    pick_input,
    progress_reporter,
    user_errors,
)
from ui.listening import Listening, Playback, phrase_index, phrase_label, phrase_start, preview_note
from ui.results import SeparationResult
from ui.text import summary_markdown
from utils.mixer import PRESETS, MixLevels
from utils.preview import PreviewWindow
from utils.video import check_sound_track

NO_RESULT_MESSAGE = "Separate a song (or preview one) first: the mixer works on its stems."
# What Separate and Preview add to the page outputs of `ui.callbacks.page_outputs`: the playback state, the
# phrase number and its label, the remix player and download, the two videos.
EXTRA_OUTPUT_COUNT = 7


class ListeningCallbacks:
    """Event handlers bound to one `Listening` (and the `Callbacks` of its service)."""

    def __init__(self, callbacks: Callbacks, listening: Listening) -> None:
        self.callbacks = callbacks
        self.listening = listening

    # --- Separate and Preview -----------------------------------------------------------------------

    def separate(
        self, recorded_or_uploaded: str | None, any_file: str | None, output_format: str, bit_depth: int | None,
        overlap: float, clean_up: bool, checkpoint: str, progress: gr.Progress = gr.Progress(),
    ) -> tuple:
        """The Separate button: the page outputs, then playback state, phrase, mixer reset and the videos."""
        song = pick_input(recorded_or_uploaded, any_file)
        with user_errors():
            check_sound_track(song)
        result = self.callbacks.run(song, output_format, bit_depth, overlap, clean_up, checkpoint, progress)
        playback = Playback.of(result)
        if progress is not None:
            progress(1.0, desc="Looking for a picture to put the stems under")
        with user_errors():
            videos = self.listening.videos(song, playback)
        return (*page_outputs(result), *self._listening_outputs(playback),
                _video(videos.get("karaoke")), _video(videos.get("vocals")))

    def preview(
        self, recorded_or_uploaded: str | None, any_file: str | None, output_format: str, bit_depth: int | None,
        overlap: float, clean_up: bool, checkpoint: str, progress: gr.Progress = gr.Progress(),
    ) -> tuple:
        """The Preview button: like Separate, for about 30 s from just before the voice (no videos)."""
        song = pick_input(recorded_or_uploaded, any_file)
        result, window = self._preview(song, output_format, bit_depth, overlap, clean_up, checkpoint, progress)
        outputs = list(page_outputs(result, offset_s=window.start_s))
        outputs[5] = f"{preview_note(window)}\n\n{summary_markdown(result)}"
        playback = Playback.of(result, offset_s=window.start_s)
        return (*outputs, *self._listening_outputs(playback), _video(None), _video(None))

    @api_docstring(
        "Preview a vocal separation quickly: separate about 30 s of a song, starting just before the voice.",
        returns="""The vocals of the excerpt (URL), its accompaniment (URL), and JSON: "preview" gives the excerpt's
            place in the song ("start_s", "end_s") and where the voice comes in ("first_voice_s", null when
            none was found); "segments" are the sung phrases in seconds from the start of the excerpt.""",
    )
    def preview_api(
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
        result, window = self._preview(song, output_format, bit_depth, overlap, clean_up, checkpoint, progress)
        payload = {**result.api_payload(), "preview": {
            "start_s": round(window.start_s, 3), "end_s": round(window.end_s, 3),
            "first_voice_s": None if window.first_voice_s is None else round(window.first_voice_s, 3),
        }}
        return str(result.vocals_path), str(result.accompaniment_path), payload

    def _preview(
        self, song: str, output_format: str, bit_depth: int | None, overlap: float, clean_up: bool,
        checkpoint: str, progress: gr.Progress | None,
    ) -> tuple[SeparationResult, PreviewWindow]:
        options = options_from_widgets(output_format, bit_depth, overlap, clean_up, checkpoint)
        with user_errors():
            return self.listening.preview(song, options, progress_reporter(progress))

    @staticmethod
    def _listening_outputs(playback: Playback) -> tuple:
        """Playback state, phrase 0 and its label, an empty remix player and download."""
        return playback, 0, phrase_label(playback, 0), None, None

    # --- phrases ------------------------------------------------------------------------------------

    def select_phrase(self, playback: Playback | None, event: gr.SelectData) -> tuple:
        """A row of the phrase table: every player to that phrase's start (the row's "#" is its number)."""
        if event.row_value:
            return self._jump(playback, int(event.row_value[0]) - 1)
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        return self._jump(playback, int(row))

    def previous_phrase(self, playback: Playback | None, index: int) -> tuple:
        return self._jump(playback, int(index or 0) - 1)

    def next_phrase(self, playback: Playback | None, index: int) -> tuple:
        return self._jump(playback, int(index or 0) + 1)

    @staticmethod
    def _jump(playback: Playback | None, index: int) -> tuple:
        """Phrase number, its label, and a new position for the vocals, accompaniment and remix players."""
        if playback is None or phrase_index(playback, index) is None:
            return (gr.skip(),) * 5
        kept = phrase_index(playback, index)
        position = gr.update(playback_position=phrase_start(playback, kept))
        return kept, phrase_label(playback, kept), position, position, position

    # --- mixer --------------------------------------------------------------------------------------

    def remix(self, playback: Playback | None, vocals_db: float, accompaniment_db: float) -> tuple[str, str]:
        """The remix player and its download, from the stems on screen at the chosen levels."""
        if playback is None:
            raise gr.Error(NO_RESULT_MESSAGE, print_exception=False)
        with user_errors():
            path = str(self.listening.remix(playback, MixLevels(float(vocals_db), float(accompaniment_db))))
        return path, path


def preset_levels(name: str) -> tuple[float, float]:
    """The two level controls' values for a preset ("karaoke", "a cappella", "original")."""
    levels = PRESETS[name]
    return levels.vocals_db, levels.accompaniment_db


def _video(path: object) -> dict[str, Any]:
    """A video player's update: shown with `path`, hidden without one."""
    return gr.update(value=None if path is None else str(path), visible=path is not None)
