"""Recorded sounds as an optional source: Hydrogen kits for the drums, real backings, held-out splits, fallback."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from utils.synth import SongConfig, generate_song
from utils.synth.dsp import compressor_gain
from utils.synth.recorded import (
    BACKINGS_DIR,
    HELD_OUT_BACKINGS,
    HELD_OUT_KITS,
    KITS_DIR,
    ROOT_ENV,
    find_backings,
    find_kits,
    read_backing,
    read_kit,
    recordings_root,
    render_recorded_drums,
)
from utils.synth.theory import Note

SR = 44100
NAMESPACE = "http://www.hydrogen-music.org/drumkit"
STAND_IN_KIT = "Audiophob"  # a training kit's name, so the stand-in lands in the training split
STAND_IN_HELD_OUT = HELD_OUT_KITS[0]


def write_kit(folder, names=("Kick", "Snare Rock", "Closed HH")):
    """A tiny Hydrogen kit in the namespaced format: one decaying-noise sample per instrument."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    instruments = []
    for i, name in enumerate(names):
        sample = rng.standard_normal(2000) * np.exp(-np.arange(2000) / 300.0)
        sf.write(folder / f"s{i}.wav", sample, 22050)
        instruments.append(
            f"<instrument><id>{i}</id><name>{name}</name>"
            f"<layer><filename>s{i}.wav</filename><min>0</min><max>1</max><gain>1</gain></layer></instrument>"
        )
    (folder / "drumkit.xml").write_text(
        f'<?xml version="1.0"?><drumkit_info xmlns="{NAMESPACE}"><name>{folder.name}</name>'
        f"<instrumentList>{''.join(instruments)}</instrumentList></drumkit_info>"
    )


@pytest.fixture
def stand_in_root(tmp_path, monkeypatch):
    """A recordings root with a training kit, a held-out kit and one short backing per split."""
    write_kit(tmp_path / KITS_DIR / STAND_IN_KIT)
    write_kit(tmp_path / KITS_DIR / STAND_IN_HELD_OUT)
    for name in ("train_song", HELD_OUT_BACKINGS[0]):
        song = tmp_path / BACKINGS_DIR / name
        song.mkdir(parents=True)
        for file, value in (("song.ogg", 0.1), ("guitar.ogg", 0.2)):
            sf.write(song / file, np.full((SR, 2), value, dtype=np.float32), SR)
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    find_kits.cache_clear()
    yield tmp_path
    find_kits.cache_clear()


def test_a_kit_needs_kick_snare_and_closed_hat_and_borrows_the_rest(tmp_path):
    write_kit(tmp_path / "full")
    kit = read_kit(tmp_path / "full")
    assert kit is not None and kit.pieces["crash"] == kit.pieces["hat_closed"]  # no cymbal: the hat plays it
    write_kit(tmp_path / "no_hat", names=("Kick", "Snare"))
    assert read_kit(tmp_path / "no_hat") is None


def test_held_out_kits_and_backings_stay_out_of_the_training_split(stand_in_root):
    assert [k.name for k in find_kits("train")] == [STAND_IN_KIT]
    assert [k.name for k in find_kits("held_out")] == [STAND_IN_HELD_OUT]
    assert [b.name for b in find_backings("train")] == ["train_song"]
    assert [b.name for b in find_backings("held_out")] == list(HELD_OUT_BACKINGS)
    audio, rate = read_backing(find_backings("train")[0])
    assert rate == SR and audio.shape == (2, SR) and np.median(audio) == pytest.approx(0.3, abs=0.01)  # song + guitar (lossy)


def test_recorded_hits_land_on_their_onsets(stand_in_root):
    kit = find_kits("train")[0]
    notes = [Note(0.5, 0.6, 36, 1.0), Note(1.0, 1.1, 38, 0.5)]
    drums = render_recorded_drums(np.random.default_rng(0), notes, kit, 2 * SR, SR)
    onsets = np.flatnonzero(np.abs(drums).max(axis=0) > 1e-3)
    assert onsets[0] == SR // 2 and np.any(np.abs(drums[:, SR : SR + 100]) > 1e-3)
    assert not np.any(drums[:, : SR // 2])


def kits_used(config: SongConfig, seeds: range) -> set[str | None]:
    return {(generate_song(seed, config).meta["drum_kit"] or {}).get("name") for seed in seeds}


def test_songs_use_recorded_kits_of_the_chosen_split_and_fall_back_without_them(stand_in_root, monkeypatch):
    config = SongConfig(duration_s=3.0, vocal_fraction=0.4, backend="numpy")
    assert kits_used(config, range(8)) == {STAND_IN_KIT, None}  # some songs keep the backend's drums
    held_out = SongConfig(duration_s=3.0, vocal_fraction=0.4, backend="numpy", recordings="held_out")
    assert kits_used(held_out, range(8)) == {STAND_IN_HELD_OUT, None}
    none = SongConfig(duration_s=3.0, vocal_fraction=0.4, backend="numpy", recordings="none")
    assert kits_used(none, range(3)) == {None}
    monkeypatch.setenv(ROOT_ENV, str(stand_in_root / "missing"))
    find_kits.cache_clear()
    assert kits_used(config, range(3)) == {None}  # no kits installed: the backend's drums


def test_compressor_gain_only_turns_loud_passages_down():
    quiet_then_loud = np.concatenate([np.full(SR, 0.01), np.full(SR, 0.5)])[None]
    gain = compressor_gain(quiet_then_loud, threshold_db=-20.0, ratio=4.0, time_s=0.01, sample_rate=SR)
    assert np.all(gain <= 1.0) and gain[SR // 2] == 1.0
    assert 20 * np.log10(gain[-1]) == pytest.approx(-(20 * np.log10(0.5) + 20) * 0.75, abs=0.1)


@pytest.mark.skipif(
    not (recordings_root() / KITS_DIR).is_dir(), reason="Debian's hydrogen-drumkits is not installed"
)
def test_the_debian_kits_are_found_in_both_splits():
    assert len(find_kits("train")) >= 5 and len(find_kits("held_out")) >= 1
