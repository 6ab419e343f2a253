"""The synthetic song generator: reproducible songs with sparse vocals, in the MUSDB18-HQ layout."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from utils.synth import FILES, Song, SongConfig, generate_dataset, generate_song, write_song
from utils.synth.plan import MAX_PHRASE_S, MIN_GAP_S, MIN_PHRASE_S, plan_phrases, span_mask

SHORT = SongConfig(duration_s=6.0, vocal_fraction=0.4, vocal_to_accompaniment_db=-3.0, backend="numpy")
REPO = Path(__file__).resolve().parents[1]


def voiced_mask(song: Song, tails: bool = False) -> np.ndarray:
    key = "tail_end_s" if tails else "end_s"
    spans = [(p["start_s"], p[key]) for p in song.meta["vocal_phrases"]]
    return span_mask(spans, song.stems["vocals"].shape[1], song.sample_rate)


def ratio_db(song: Song, mask: np.ndarray) -> float:
    vocals, accompaniment = song.stems["vocals"][:, mask], song.accompaniment[:, mask]
    return 20 * np.log10(
        np.sqrt(np.mean(vocals.astype(np.float64) ** 2) / np.mean(accompaniment.astype(np.float64) ** 2))
    )


def band_share_db(audio: np.ndarray, sample_rate: int, above_hz: float) -> float:
    freqs, power = signal.welch(audio.mean(axis=0), sample_rate, nperseg=4096)
    return 10 * np.log10(power[freqs > above_hz].sum() / power.sum())


@pytest.fixture(scope="module")
def song() -> Song:
    return generate_song(7, SHORT)


def test_same_seed_gives_bit_identical_stems(song):
    again = generate_song(7, SHORT)
    for name, audio in song.stems.items():
        assert np.array_equal(audio, again.stems[name]), name


def test_different_seeds_give_different_songs(song):
    other = generate_song(8, SHORT)
    assert not np.array_equal(song.mixture, other.mixture)


def test_stems_are_float32_stereo_of_the_configured_length(song):
    assert song.sample_rate == SHORT.sample_rate
    assert set(song.stems) == {"vocals", "drums", "bass", "other"}
    for audio in song.stems.values():
        assert audio.dtype == np.float32
        assert audio.shape == (2, round(SHORT.duration_s * SHORT.sample_rate))


def test_mixture_is_the_sum_of_the_stems_and_accompaniment_the_sum_without_vocals(song):
    stems = song.stems
    assert np.array_equal(song.mixture, stems["vocals"] + stems["drums"] + stems["bass"] + stems["other"])
    assert np.array_equal(song.accompaniment, stems["drums"] + stems["bass"] + stems["other"])
    assert song.mixture.dtype == np.float32


def test_vocals_and_accompaniment_sound_and_the_mixture_does_not_clip(song):
    assert np.abs(song.stems["vocals"]).max() > 1e-3
    assert np.abs(song.accompaniment).max() > 1e-3
    assert np.abs(song.mixture).max() < 1.0


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.6])
def test_achieved_vocal_fraction_is_within_a_tenth_of_the_request(fraction):
    song = generate_song(3, SongConfig(duration_s=8.0, vocal_fraction=fraction, backend="numpy"))
    assert abs(song.meta["vocal_fraction"] - fraction) <= 0.1
    assert abs(voiced_mask(song).mean() - song.meta["vocal_fraction"]) < 1e-6


def test_vocals_are_exactly_zero_outside_phrases_and_their_tails(song):
    outside = ~voiced_mask(song, tails=True)
    assert outside.any()
    assert not song.stems["vocals"][:, outside].any()


def test_vocals_sound_throughout_every_planned_phrase(song):
    frame = song.sample_rate // 10
    vocals = song.stems["vocals"].astype(np.float64)
    for phrase in song.meta["vocal_phrases"]:
        start, end = (round(phrase[k] * song.sample_rate) for k in ("start_s", "end_s"))
        frames = vocals[:, start : end - (end - start) % frame].reshape(2, -1, frame)
        assert (np.sqrt(np.mean(frames**2, axis=(0, 2))) > 1e-4).all()


@pytest.mark.parametrize("target_db", [-10.0, 0.0, 5.0])
def test_vocal_to_accompaniment_ratio_on_voiced_samples_is_within_half_a_db(target_db):
    config = SongConfig(
        duration_s=6.0, vocal_fraction=0.3, vocal_to_accompaniment_db=target_db, backend="numpy"
    )
    song = generate_song(11, config)
    assert abs(ratio_db(song, voiced_mask(song)) - target_db) < 0.5
    assert abs(song.meta["vocal_to_accompaniment_db"] - target_db) < 0.5


def test_a_zero_vocal_fraction_gives_an_instrumental():
    song = generate_song(5, SongConfig(duration_s=4.0, vocal_fraction=0.0, backend="numpy"))
    assert not song.stems["vocals"].any()
    assert song.meta["vocal_phrases"] == [] and song.meta["vocal_to_accompaniment_db"] is None


def test_phrases_last_one_to_eight_seconds_on_the_half_beat_grid_with_gaps():
    beat_s = 60 / 97
    for seed in range(20):
        phrases = plan_phrases(np.random.default_rng(seed), 30.0, 0.5, beat_s)
        for phrase in phrases:
            assert MIN_PHRASE_S - 1e-9 <= phrase.duration_s <= MAX_PHRASE_S + 1e-9
            for t in (phrase.start_s, phrase.end_s):
                assert abs(t / (beat_s / 2) - round(t / (beat_s / 2))) < 1e-6
        assert all(b.start_s - a.end_s >= MIN_GAP_S - 1e-9 for a, b in itertools.pairwise(phrases))


def test_vocals_carry_energy_above_5_khz_and_accompaniment_above_11_khz(song):
    vocals = song.stems["vocals"][:, voiced_mask(song)]
    assert band_share_db(vocals, song.sample_rate, 5000) > -35
    assert band_share_db(song.accompaniment, song.sample_rate, 11000) > -45


def test_write_song_writes_the_musdb_layout_with_consistent_meta(song, tmp_path):
    write_song(song, tmp_path / "song")
    names = {"mixture", "vocals", "drums", "bass", "other", "accompaniment"}
    assert {p.stem for p in (tmp_path / "song").glob("*.wav")} == names
    assert json.loads((tmp_path / "song" / "meta.json").read_text())["files"] == list(FILES)
    read = {}
    for name in names:
        audio, rate = sf.read(tmp_path / "song" / f"{name}.wav", dtype="float32", always_2d=True)
        assert rate == song.sample_rate and sf.info(tmp_path / "song" / f"{name}.wav").subtype == "FLOAT"
        read[name] = audio.T
    assert np.array_equal(read["mixture"], read["vocals"] + read["drums"] + read["bass"] + read["other"])
    assert np.array_equal(read["accompaniment"], read["drums"] + read["bass"] + read["other"])
    meta = json.loads((tmp_path / "song" / "meta.json").read_text())
    assert meta["seed"] == 7 and meta["sample_rate"] == song.sample_rate and meta["backend"] == "numpy"
    assert 70 <= meta["tempo_bpm"] <= 150 and meta["mode"] and meta["key"] and meta["sections"]
    assert meta["vocal_phrases"] == song.meta["vocal_phrases"]
    assert all(p["start_s"] < p["end_s"] <= p["tail_end_s"] for p in meta["vocal_phrases"])


def test_generate_dataset_writes_one_folder_per_seed(tmp_path):
    folders = generate_dataset(tmp_path, [1, 2], SongConfig(duration_s=2.0, backend="numpy"))
    assert [f.name for f in folders] == ["song_000001", "song_000002"]
    assert all((f / "mixture.wav").is_file() for f in folders)


def test_cli_writes_count_song_folders(tmp_path):
    command = [
        sys.executable,
        "-m",
        "utils.synth",
        str(tmp_path),
        "--count",
        "2",
        "--seed0",
        "40",
        "--duration",
        "2",
        "--vocal-fraction",
        "0.5",
        "--backend",
        "numpy",
        "--files",
        "vocals",
        "mixture",
        "--quiet",
    ]
    subprocess.run(command, cwd=REPO, check=True, capture_output=True)
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert folders == ["song_000040", "song_000041"]
    meta = json.loads((tmp_path / "song_000041" / "meta.json").read_text())
    assert meta["seed"] == 41 and meta["files"] == ["mixture", "vocals"]
    assert {p.name for p in (tmp_path / "song_000041").iterdir()} == {"mixture.wav", "vocals.wav", "meta.json"}


def test_write_song_writes_only_the_files_asked_for_and_rejects_unknown_ones(song, tmp_path):
    write_song(song, tmp_path / "song", files=("vocals", "mixture"))
    assert {p.name for p in (tmp_path / "song").iterdir()} == {"mixture.wav", "vocals.wav", "meta.json"}
    vocals, _ = sf.read(tmp_path / "song" / "vocals.wav", dtype="float32", always_2d=True)
    assert np.array_equal(vocals.T, song.stems["vocals"])
    for bad in [("vocals", "lead"), ()]:
        with pytest.raises(ValueError, match="subset of"):
            write_song(song, tmp_path / "bad", files=bad)


@pytest.mark.parametrize(
    "bad",
    [
        {"duration_s": 0.0},
        {"vocal_fraction": 0.95},
        {"sample_rate": 1000},
        {"backend": "midi"},
        {"vocal_to_accompaniment_db": float("nan")},
    ],
)
def test_config_rejects_values_out_of_range(bad):
    with pytest.raises(ValueError):
        SongConfig(**bad)


def test_fluidsynth_backend_is_deterministic_full_band_and_sums_to_the_mixture():
    pytest.importorskip(
        "fluidsynth", exc_type=ImportError
    )  # pyfluidsynth raises ImportError without the C library
    from utils.synth.fluid import fluidsynth_available

    if not fluidsynth_available():
        pytest.skip("FluidR3_GM soundfont not installed")
    config = SongConfig(
        duration_s=5.0, vocal_fraction=0.4, vocal_to_accompaniment_db=-2.0, backend="fluidsynth"
    )
    song = generate_song(21, config)
    generate_song(22, config)
    again = generate_song(21, config)
    assert song.meta["backend"] == "fluidsynth"
    for name, audio in song.stems.items():
        assert np.array_equal(audio, again.stems[name]), name
    assert np.array_equal(song.mixture, sum(song.stems[n] for n in ("vocals", "drums", "bass", "other")))
    assert abs(ratio_db(song, voiced_mask(song)) + 2.0) < 0.5
    assert band_share_db(song.accompaniment, song.sample_rate, 11000) > -60
