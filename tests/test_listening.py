"""The listening tools, called directly with the tiny random model: phrase jumps, preview, mixer, videos."""

from __future__ import annotations

from pathlib import Path

import av
import gradio as gr
import numpy as np
import pytest
import soundfile as sf
from test_video import make_video, picture_packets

from ui.callbacks import Callbacks
from ui.listening import REMIXES_KEPT, Listening, Playback, phrase_label, remix_label
from ui.listening_callbacks import EXTRA_OUTPUT_COUNT, ListeningCallbacks, preset_levels
from ui.results import SeparationOptions
from ui.service import SeparationService
from conftest import tiny_service, write_phrased_song
from ui.text import clock, segment_rows, share_line
from utils.mixer import MixLevels, level_to_gain
from utils.activity import detect_vocal_activity
from utils.preview import LEAD_IN_S, first_voice_in_segments

def level_finder(mixture: np.ndarray, sample_rate: int) -> float | None:
    """The test songs' "voice" is a pure tone, which the learned detector rightly does not call singing:
    these tests find it by level (the window logic is what they test; tests/test_preview.py covers the finders)."""
    return first_voice_in_segments(detect_vocal_activity(mixture, sample_rate).segments)


EXACT = SeparationOptions(output_format="wav", bit_depth=32, overlap=0.0)  # float WAV: remixes compare exactly
WIDGETS = ("wav", 32, 0.0, False, "")
PHRASES = [(0.5, 1.2), (2.0, 3.0)]
PAGE_OUTPUT_COUNT = 10


@pytest.fixture(scope="module")
def service() -> SeparationService:
    # Every test's results stay cached (each song separates once); the level rule finds the tone phrases.
    service = tiny_service(result_cache_size=32, voice_detector="level")
    yield service
    service.close()


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_phrased_song(tmp_path_factory.mktemp("songs") / "two phrases.wav", PHRASES, seconds=3.5)


@pytest.fixture(scope="module")
def listening(service: SeparationService) -> ListeningCallbacks:
    return ListeningCallbacks(Callbacks(service), Listening(service, voice_finder=level_finder, preview_s=3.0))


def playback_of(**fields: object) -> Playback:
    defaults = dict(song_name="song", folder=Path("/nonexistent"), vocals_path=Path("v.wav"),
                    accompaniment_path=Path("a.wav"), segments=((1.5, 3.0), (10.0, 12.5), (20.0, 21.0)),
                    output_format="wav", bit_depth=16)
    return Playback(**{**defaults, **fields})  # type: ignore[arg-type]


def selected(row: int, playback: Playback) -> gr.SelectData:
    """What Gradio hands to a Dataframe.select listener when a cell of row `row` is clicked."""
    cells = segment_rows_of(playback)[row]
    return gr.SelectData(None, {"index": [row, 1], "value": cells[1], "row_value": cells})


def segment_rows_of(playback: Playback) -> list[list[object]]:
    return [[i, clock(s), clock(e), f"{e - s:.1f} s"] for i, (s, e) in enumerate(playback.segments, start=1)]


def positions(outputs: tuple) -> list[float]:
    """The playback positions sent to the vocals, accompaniment and remix players."""
    return [update["playback_position"] for update in outputs[2:]]


# --- phrases --------------------------------------------------------------------------------------------


def test_selecting_a_phrase_moves_every_player_to_its_start(listening: ListeningCallbacks) -> None:
    playback = playback_of()
    outputs = listening.select_phrase(playback, selected(1, playback))
    assert outputs[0] == 1 and positions(outputs) == [10.0, 10.0, 10.0]
    assert outputs[1] == "Phrase 2 of 3 · 0:10.0–0:12.5"


def test_previous_and_next_step_through_the_phrases_and_stop_at_the_ends(listening: ListeningCallbacks) -> None:
    playback = playback_of()
    assert positions(listening.next_phrase(playback, 0)) == [10.0] * 3
    assert positions(listening.next_phrase(playback, 2)) == [20.0] * 3  # stays on the last
    assert positions(listening.previous_phrase(playback, 1)) == [1.5] * 3
    assert listening.previous_phrase(playback, 0)[0] == 0  # stays on the first


def test_a_preview_jumps_on_its_own_clock_but_shows_song_times(listening: ListeningCallbacks) -> None:
    playback = playback_of(segments=((1.5, 3.0),), offset_s=40.0)
    outputs = listening.select_phrase(playback, selected(0, playback))
    assert positions(outputs) == [1.5] * 3 and outputs[1] == "Phrase 1 of 1 · 0:41.5–0:43.0"


def test_without_phrases_or_result_nothing_moves(listening: ListeningCallbacks) -> None:
    assert all(output == gr.skip() for output in listening.next_phrase(None, 0))
    assert all(output == gr.skip() for output in listening.next_phrase(playback_of(segments=()), 0))
    assert phrase_label(playback_of(segments=()), 0) == "No sung phrases found."


# --- Separate with the listening outputs ----------------------------------------------------------------


def test_separate_leaves_the_phrases_for_the_players(listening: ListeningCallbacks, song: Path) -> None:
    outputs = listening.separate(None, str(song), *WIDGETS, progress=None)
    assert len(outputs) == PAGE_OUTPUT_COUNT + EXTRA_OUTPUT_COUNT
    playback = outputs[PAGE_OUTPUT_COUNT]
    assert [(round(s, 1), round(e, 1)) for s, e in playback.segments] == [(0.4, 1.3), (2.0, 3.0)]
    jumped = listening.select_phrase(playback, selected(1, playback))
    assert positions(jumped) == [pytest.approx(2.0, abs=0.06)] * 3
    karaoke_video, vocals_video = outputs[-2:]
    assert not karaoke_video["visible"] and not vocals_video["visible"]  # an audio upload has no picture


# --- mixer ----------------------------------------------------------------------------------------------


def test_remix_is_the_sum_of_the_scaled_stems(listening: ListeningCallbacks, song: Path) -> None:
    playback = Playback.of(listening.listening.service.separate(song, EXACT))
    vocals, _ = sf.read(playback.vocals_path, dtype="float32")
    accompaniment, _ = sf.read(playback.accompaniment_path, dtype="float32")
    player, download = listening.remix(playback, -6.0, 3.0)
    assert player == download and Path(player).name == "two phrases_remix_v-6.0dB_a+3.0dB.wav"
    mixed, _ = sf.read(player, dtype="float32")
    np.testing.assert_allclose(mixed, level_to_gain(-6.0) * vocals + level_to_gain(3.0) * accompaniment, atol=1e-6)


def test_karaoke_and_a_cappella_presets_keep_one_stem(listening: ListeningCallbacks, song: Path) -> None:
    playback = Playback.of(listening.listening.service.separate(song, EXACT))
    for preset, stem in (("karaoke", playback.accompaniment_path), ("a cappella", playback.vocals_path)):
        path, _ = listening.remix(playback, *preset_levels(preset))
        assert Path(path).name == f"two phrases_{preset.replace(' ', '-')}.wav"
        np.testing.assert_array_equal(sf.read(path, dtype="float32")[0], sf.read(stem, dtype="float32")[0])


def test_a_remix_is_made_once_and_needs_no_new_separation(service: SeparationService, song: Path) -> None:
    listening = Listening(service)
    playback = Playback.of(service.separate(song, EXACT))
    first = listening.remix(playback, MixLevels(-3.0, 0.0))
    written = first.stat().st_ino  # a rewrite would be a new file (write_audio links a finished temporary)
    playback.vocals_path.rename(playback.vocals_path.with_suffix(".gone"))  # the stems stay decoded in memory
    try:
        assert listening.remix(playback, MixLevels(-3.0, 0.0)).stat().st_ino == written
        assert listening.remix(playback, MixLevels(-9.0, 0.0)).is_file()
    finally:
        playback.vocals_path.with_suffix(".gone").rename(playback.vocals_path)


def test_only_the_newest_free_remixes_are_kept(service: SeparationService, tmp_path: Path) -> None:
    song = write_phrased_song(tmp_path / "many mixes.wav", PHRASES, seconds=3.5)
    listening = Listening(service)
    playback = Playback.of(service.separate(song, EXACT))
    karaoke = listening.remix(playback, MixLevels(-40.0, 0.0))
    made = [listening.remix(playback, MixLevels(-float(level), 0.0)) for level in range(1, REMIXES_KEPT + 3)]
    assert [path.is_file() for path in made] == [False, False] + [True] * REMIXES_KEPT
    assert listening.remix(playback, MixLevels(-3.0, 0.0)) == made[2]  # asked again: now the newest
    listening.remix(playback, MixLevels(-10.0, 0.0))
    assert made[2].is_file() and not made[3].is_file() and karaoke.is_file()


def test_remix_before_any_result_asks_for_one(listening: ListeningCallbacks) -> None:
    with pytest.raises(gr.Error, match="Separate a song"):
        listening.remix(None, 0.0, 0.0)


def test_remix_names_say_the_levels() -> None:
    assert remix_label(MixLevels(-40.0, 0.0)) == "karaoke"
    assert remix_label(MixLevels(-50.0, 2.0)) == "remix_vmute_a+2.0dB"


# --- preview --------------------------------------------------------------------------------------------


def test_preview_starts_just_before_the_voice(service: SeparationService, tmp_path: Path) -> None:
    late = write_phrased_song(tmp_path / "late entry.wav", [(4.0, 7.5)], seconds=8.0)
    result, window = Listening(service, voice_finder=level_finder, preview_s=3.0).preview(late, EXACT)
    assert window.first_voice_s == pytest.approx(4.0, abs=0.1)
    assert window.start_s == pytest.approx(4.0 - LEAD_IN_S, abs=0.1) and window.length_s == pytest.approx(3.0)
    assert result.song_name == "late entry (preview)" and result.duration_s == pytest.approx(3.0)
    # The excerpt is the song from the window's start: its voice comes in LEAD_IN_S after its start.
    assert result.activity.segments[0][0] == pytest.approx(LEAD_IN_S, abs=0.1)
    assert sf.info(str(result.vocals_path)).frames == round(3.0 * 44100)


def test_preview_uses_a_voice_detector_when_given_one_and_remembers_the_window(
    service: SeparationService, song: Path
) -> None:
    calls: list[int] = []

    def detector(mixture: np.ndarray, sample_rate: int) -> float:
        calls.append(mixture.shape[1])
        return 2.0

    listening = Listening(service, voice_finder=detector, preview_s=1.0)
    first, window = listening.preview(song, EXACT)
    repeat, again = listening.preview(song, EXACT)
    assert (window.start_s, window.end_s) == (2.0 - LEAD_IN_S, 3.0 - LEAD_IN_S) and again == window
    assert len(calls) == 1 and repeat.from_cache and repeat.vocals_path == first.vocals_path


def test_preview_button_marks_the_result_as_a_preview(listening: ListeningCallbacks, song: Path) -> None:
    outputs = listening.preview(None, str(song), *WIDGETS, progress=None)
    summary, rows, playback = outputs[5], outputs[6], outputs[PAGE_OUTPUT_COUNT]
    assert summary.startswith("**Preview** of 0:00.0–0:03.0 of 0:03.5") and "Press **Separate**" in summary
    assert playback.offset_s == 0.0 and rows[0][1] == clock(playback.segments[0][0])


def test_preview_api_returns_the_stems_and_where_the_excerpt_lies(listening: ListeningCallbacks, song: Path) -> None:
    vocals, accompaniment, payload = listening.preview_api(str(song), *WIDGETS, progress=None)
    assert Path(vocals).name == "two phrases (preview)_vocals.wav" and Path(accompaniment).is_file()
    assert payload["preview"]["start_s"] == 0.0 and payload["preview"]["end_s"] == 3.0
    assert payload["preview"]["first_voice_s"] == pytest.approx(0.44, abs=0.1)


# --- video ----------------------------------------------------------------------------------------------


def test_a_video_upload_comes_back_as_karaoke_and_vocals_videos(listening: ListeningCallbacks,
                                                                tmp_path: Path) -> None:
    upload = make_video(tmp_path / "clip.mp4")
    outputs = listening.separate(None, str(upload), *WIDGETS, progress=None)
    karaoke, vocals = outputs[-2:]
    assert karaoke["visible"] and Path(karaoke["value"]).name == "clip_karaoke.mp4"
    assert Path(vocals["value"]).name == "clip_vocals.mp4"
    for video in (karaoke, vocals):
        assert [p for p, _, _ in picture_packets(Path(video["value"]))] == [p for p, _, _ in picture_packets(upload)]
    with av.open(karaoke["value"]) as container:
        sound = np.concatenate([frame.to_ndarray() for frame in container.decode(audio=0)], axis=1)
    accompaniment, _ = sf.read(outputs[1], dtype="float32")
    assert np.sqrt(np.mean(sound**2)) == pytest.approx(np.sqrt(np.mean(accompaniment**2)), rel=0.1)


def test_a_video_without_sound_gets_a_clear_message(listening: ListeningCallbacks, tmp_path: Path) -> None:
    silent = make_video(tmp_path / "silent film.mp4", with_sound=False)
    with pytest.raises(gr.Error, match="video without a sound track"):
        listening.separate(None, str(silent), *WIDGETS, progress=None)


# --- texts ----------------------------------------------------------------------------------------------


def test_share_line_and_phrase_rows_in_song_time(service: SeparationService, song: Path) -> None:
    result = service.separate(song, EXACT)
    line = share_line(result.song_name, result.duration_s, result.activity)
    assert line == ("“two phrases” (0:03.5): voice in 54 % of it, 2 sung phrases, the first at 0:00.4. "
                    "Vocals and accompaniment split with BSMamba2.")
    assert segment_rows(result.activity, offset_s=60.0)[1][1] == "1:02.0"
