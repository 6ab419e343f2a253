"""The stem mixer: levels in dB, presets, and the remix written as a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from utils.mixer import MAX_GAIN_DB, MIX_BLOCK_FRAMES, MUTE_DB, PRESETS, MixLevels, level_to_gain, remix, render_remix

RATE = 44100


def stems(frames: int = 2 * MIX_BLOCK_FRAMES + 123, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two random stereo stems whose length is not a multiple of the mixing block."""
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal((2, frames))).astype(np.float32), \
        (0.3 * rng.standard_normal((2, frames))).astype(np.float32)


def test_levels_become_amplitude_gains() -> None:
    assert level_to_gain(0.0) == 1.0
    assert level_to_gain(MAX_GAIN_DB) == pytest.approx(1.9953, abs=1e-4)
    assert level_to_gain(-6.0) == pytest.approx(0.5012, abs=1e-4)
    assert level_to_gain(MUTE_DB) == 0.0 and level_to_gain(-np.inf) == 0.0


def test_levels_above_the_top_of_the_control_are_refused() -> None:
    with pytest.raises(ValueError, match="at most"):
        MixLevels(vocals_db=MAX_GAIN_DB + 1)
    with pytest.raises(ValueError):
        MixLevels(accompaniment_db=float("nan"))


def test_remix_is_the_sum_of_the_scaled_stems() -> None:
    vocals, accompaniment = stems()
    levels = MixLevels(vocals_db=4.5, accompaniment_db=-12.0)
    expected = level_to_gain(4.5) * vocals.astype(np.float64) + level_to_gain(-12.0) * accompaniment
    mixed = remix(vocals, accompaniment, levels)
    assert mixed.dtype == np.float32 and mixed.shape == vocals.shape
    np.testing.assert_allclose(mixed, expected, atol=1e-6)


def test_presets_mute_one_stem_and_original_gives_the_mixture_back() -> None:
    vocals, accompaniment = stems()
    np.testing.assert_array_equal(remix(vocals, accompaniment, PRESETS["karaoke"]), accompaniment)
    np.testing.assert_array_equal(remix(vocals, accompaniment, PRESETS["a cappella"]), vocals)
    np.testing.assert_allclose(remix(vocals, accompaniment, PRESETS["original"]), vocals + accompaniment, atol=1e-7)


def test_remix_reads_transposed_views_and_leaves_the_stems_alone() -> None:
    vocals, accompaniment = stems(frames=1000)
    before = vocals.copy()
    mixed = remix(np.ascontiguousarray(vocals.T).T, accompaniment, MixLevels(-3.0, 0.0))
    np.testing.assert_allclose(mixed, level_to_gain(-3.0) * vocals + accompaniment, atol=1e-6)
    np.testing.assert_array_equal(vocals, before)


def test_remix_refuses_stems_of_different_shapes() -> None:
    vocals, accompaniment = stems(frames=1000)
    with pytest.raises(ValueError, match="shape"):
        remix(vocals, accompaniment[:, :999], MixLevels())


def test_render_remix_writes_the_mix_of_two_stem_files(tmp_path: Path) -> None:
    vocals, accompaniment = stems(frames=RATE)
    for name, stem in (("vocals", vocals), ("accompaniment", accompaniment)):
        sf.write(tmp_path / f"{name}.wav", stem.T, RATE, subtype="FLOAT")
    report = render_remix(tmp_path / "vocals.wav", tmp_path / "accompaniment.wav", MixLevels(-6.0, 0.0),
                          tmp_path / "remix.wav", "wav", 32)
    written, rate = sf.read(report.path, dtype="float32")
    assert rate == RATE and report.gain_db == 0.0
    np.testing.assert_allclose(written.T, level_to_gain(-6.0) * vocals + accompaniment, atol=1e-6)
