"""Quick listening on top of a separation: jump between phrases, a preview that starts at the voice, the
mixer, and the video back with a new sound track. No Gradio here; `ui/listening_callbacks.py` wires it.

    listening = Listening(service)
    result, window = listening.preview("song.mp3")          # ~30 s from just before the first phrase
    playback = Playback.of(result)
    listening.remix(playback, PRESETS["karaoke"])           # a file beside the stems, no new separation
    listening.videos("clip.mp4", playback)                  # {"karaoke": …mp4, "vocals": …mp4}

Nothing here separates a song twice: the mixer and the videos read the stems a separation wrote (the last
pair stays decoded in memory, so moving a level control costs a mix and an encode), and the place of a
song's first phrase is remembered for the next preview of the same file.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import os
import shutil
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from model.inference.pipeline import ProgressFn
from model.inference.separator import VOCALS
from model.stft import SAMPLE_RATE
from ui.results import SeparationOptions, SeparationResult
from ui.service import ResultCache, SeparationService
from ui.text import clock
from utils.audio import load_audio, output_extension, to_original_layout, write_audio
from utils.files import file_sha256, safe_name
from utils.mixer import PRESETS, MixLevels, read_stem, remix
from utils.preview import PREVIEW_S, PreviewWindow, VoiceFinder, detector_finder, plan_preview
from utils.video import check_sound_track, output_path, probe_video, remux_with_audio

logger = logging.getLogger(__name__)

# Where the first phrase of a song lies, remembered for this many songs (a few bytes each).
WINDOWS_KEPT = 64
# Progress shares of a preview: reading the file, finding the voice, then separating the window.
PROGRESS_DECODED = 0.05
PROGRESS_FOUND = 0.4
# Videos made from a separation, by name: the stem that becomes the sound track.
VIDEO_STEMS = {"karaoke": "accompaniment", "vocals": VOCALS}
PREVIEW_SUFFIX = " (preview)"
# Free-level remixes kept per result (each as large as a stem); older ones are deleted as new ones come.
REMIXES_KEPT = 4
REMIX_PREFIX = "remix_"


@dataclass(frozen=True)
class Playback:
    """The result on screen, as far as the listening tools need it. Times on the players' clock."""

    song_name: str
    folder: Path
    vocals_path: Path
    accompaniment_path: Path
    segments: tuple[tuple[float, float], ...]
    output_format: str
    bit_depth: int | None
    offset_s: float = 0.0  # where the players' 0 lies in the song: a preview's start, 0 for a whole song

    @classmethod
    def of(cls, result: SeparationResult, offset_s: float = 0.0) -> Playback:
        return cls(
            song_name=result.song_name, folder=result.folder, vocals_path=result.vocals_path,
            accompaniment_path=result.accompaniment_path, segments=tuple(result.activity.segments),
            output_format=result.options.output_format, bit_depth=result.options.bit_depth, offset_s=offset_s,
        )


def phrase_index(playback: Playback, index: int) -> int | None:
    """`index` kept inside the phrase list; None when there are no phrases."""
    if not playback.segments:
        return None
    return min(max(index, 0), len(playback.segments) - 1)


def phrase_start(playback: Playback, index: int) -> float:
    """Where phrase `index` (from 0, clamped) starts on the players' clock; 0 without phrases."""
    kept = phrase_index(playback, index)
    return 0.0 if kept is None else playback.segments[kept][0]


def phrase_label(playback: Playback, index: int) -> str:
    """`Phrase 3 of 12 · 0:41.3–0:45.0` (song time), or a note that there is none."""
    kept = phrase_index(playback, index)
    if kept is None:
        return "No sung phrases found."
    start, end = playback.segments[kept]
    return (f"Phrase {kept + 1} of {len(playback.segments)} · {clock(playback.offset_s + start)}–"
            f"{clock(playback.offset_s + end)}")


def remix_label(levels: MixLevels) -> str:
    """A file-name part for a mix: the preset's name, or both levels (`remix_v-6.0dB_a+0.0dB`)."""
    for name, preset in PRESETS.items():
        if levels.gains == preset.gains:
            return name.replace(" ", "-")
    vocals, band = (f"{level:+.1f}dB" if gain else "mute" for level, gain in
                    zip((levels.vocals_db, levels.accompaniment_db), levels.gains, strict=True))
    return f"{REMIX_PREFIX}v{vocals}_a{band}"


def preview_note(window: PreviewWindow) -> str:
    """What the summary says about a preview: which part of the song it is, and how it was placed."""
    where = f"{clock(window.start_s)}–{clock(window.end_s)} of {clock(window.song_duration_s)}"
    if window.first_voice_s is None:
        found = "no voice was found, so it is the start of the song"
    else:
        found = f"the voice comes in at {clock(window.first_voice_s)}"
    return f"**Preview** of {where} ({found}). Press **Separate** for the whole song."


class Listening:
    """The listening tools of one `SeparationService`, with what they remember between requests."""

    def __init__(
        self, service: SeparationService, voice_finder: VoiceFinder | None = None, preview_s: float = PREVIEW_S
    ) -> None:
        """`voice_finder` finds a song's first phrase on the mixture; by default the learned voice detector
        (`utils.voice_detector`, mixture-only), which needs no separation. Previews last `preview_s`."""
        self.service = service
        self.voice_finder = voice_finder or detector_finder()
        self.preview_s = preview_s
        self._windows: OrderedDict[str, PreviewWindow] = OrderedDict()
        # Finished previews by upload, not by excerpt: a float WAV excerpt is never the same bytes twice
        # (libsndfile stamps the time into its PEAK chunk), so the service's cache cannot recognise it.
        self._previews = ResultCache(service.config.result_cache_size)
        self._stems: tuple[tuple[Path, Path], tuple[np.ndarray, np.ndarray, int]] | None = None
        self._lock = threading.Lock()

    # --- preview ------------------------------------------------------------------------------------

    def preview(
        self, song_path: str | os.PathLike[str], options: SeparationOptions = SeparationOptions(),
        progress: ProgressFn | None = None,
    ) -> tuple[SeparationResult, PreviewWindow]:
        """Separate about 30 s of the song from just before its first sung phrase.

        The excerpt is separated by the service like any song (cached, zipped, with plots), under the name
        `<song> (preview)`; its times start at the window's start. Raises SeparationError subclasses.
        """
        report = progress or (lambda fraction, message: None)
        options = options.validated()
        loaded = self.service.model_for(options.checkpoint)
        song_path = Path(song_path)
        check_sound_track(song_path)
        content = file_sha256(song_path)
        key = json.dumps([content, loaded.source, self.service.config.chunk_seconds, self.preview_s])
        result_key = json.dumps([key, song_path.stem, dataclasses.asdict(options)])
        with self._lock:
            window = self._windows.get(key)
        if window is not None and (hit := self._previews.get(result_key)) is not None:
            report(1.0, "Done (same file and settings as before)")
            return dataclasses.replace(hit, from_cache=True), window
        report(0.0, "Reading the file")
        audio = load_audio(song_path, max_duration_s=self.service.config.max_duration_s)
        if window is None:
            report(PROGRESS_DECODED, "Listening for the voice")
            window = plan_preview(audio.waveform, SAMPLE_RATE, self.voice_finder, length_s=self.preview_s)
            with self._lock:
                self._windows[key] = window
                while len(self._windows) > WINDOWS_KEPT:
                    self._windows.popitem(last=False)
        logger.info("preview of %s: %.1f-%.1f s (voice at %s)", song_path.name, window.start_s, window.end_s,
                    window.first_voice_s)
        scratch = self.service.work_root / f"excerpt-{uuid.uuid4().hex}"
        scratch.mkdir()
        try:
            excerpt = _write_excerpt(scratch / f"{safe_name(song_path.stem)}{PREVIEW_SUFFIX}.wav", audio.waveform,
                                     window, audio.original_sample_rate, audio.original_channels)
            result = self.service.separate(
                excerpt, options, lambda fraction, message: report(PROGRESS_FOUND + (1 - PROGRESS_FOUND) * fraction,
                                                                   message),
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self._previews.put(result_key, result)
        return result, window

    # --- mixer --------------------------------------------------------------------------------------

    def remix(self, playback: Playback, levels: MixLevels) -> Path:
        """The two stems mixed at `levels`, written once beside them in the result's format."""
        path = playback.folder / f"{playback.song_name}_{remix_label(levels)}{output_extension(playback.output_format)}"
        if path.is_file():
            os.utime(path)  # asked for again: the newest, so the last to be pruned
            return path
        vocals, accompaniment, rate = self._decoded_stems(playback)
        try:
            write_audio(path, remix(vocals, accompaniment, levels), rate, playback.output_format, playback.bit_depth)
        except FileExistsError:  # the same mix, written by a request running at the same time
            pass
        _prune_remixes(playback, keep=path)
        return path

    def _decoded_stems(self, playback: Playback) -> tuple[np.ndarray, np.ndarray, int]:
        """Both stems as float32 `(channels, samples)`; the last pair read stays in memory."""
        key = (playback.vocals_path, playback.accompaniment_path)
        with self._lock:
            if self._stems is not None and self._stems[0] == key:
                return self._stems[1]
        vocals, rate = read_stem(playback.vocals_path)
        accompaniment, _ = read_stem(playback.accompaniment_path)
        with self._lock:
            self._stems = (key, (vocals, accompaniment, rate))
        return vocals, accompaniment, rate

    # --- video --------------------------------------------------------------------------------------

    def videos(self, upload: str | os.PathLike[str], playback: Playback) -> dict[str, Path]:
        """For a video upload, `{"karaoke": path, "vocals": path}`: its picture under each stem; else {}.

        The picture is re-muxed, not re-encoded (utils/video.py); videos already made are reused.
        """
        upload = Path(upload)
        if probe_video(upload) is None:
            return {}
        stems = {"accompaniment": playback.accompaniment_path, VOCALS: playback.vocals_path}
        made: dict[str, Path] = {}
        for name, stem in VIDEO_STEMS.items():
            path = output_path(upload, playback.folder, f"{playback.song_name}_{name}")
            if not path.is_file():
                audio, rate = read_stem(stems[stem])
                partial = path.with_name(f".{path.stem}.part{path.suffix}")
                remux_with_audio(upload, audio, rate, partial)
                os.replace(partial, path)
            made[name] = path
        return made


def _prune_remixes(playback: Playback, keep: Path) -> None:
    """Delete all but the `REMIXES_KEPT` newest free-level remixes of a result (presets stay)."""
    remixes = sorted(playback.folder.glob(f"{glob.escape(playback.song_name)}_{REMIX_PREFIX}*"),
                     key=lambda path: path.stat().st_mtime_ns, reverse=True)
    for old in remixes[REMIXES_KEPT:]:
        if old != keep:
            old.unlink(missing_ok=True)


def _write_excerpt(
    path: Path, waveform: np.ndarray, window: PreviewWindow, sample_rate: int, channels: int
) -> Path:
    """The window of a model-rate stereo `waveform`, back at the upload's rate and channel count, as float WAV."""
    start, end = (round(t * SAMPLE_RATE) for t in (window.start_s, window.end_s))
    excerpt = to_original_layout(np.ascontiguousarray(waveform[:, start:end]), sample_rate, channels)
    sf.write(path, excerpt.T, sample_rate, subtype="FLOAT")
    return path

