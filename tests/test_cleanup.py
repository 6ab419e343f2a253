"""The sparse-region clean-up: silence between phrases, stems still sum to the mixture, block by block."""

from __future__ import annotations

import math

import numpy as np
import pytest

from utils.cleanup import GateSettings, apply_sparse_gate_block, gate_gain_block

RATE = 8000
SECONDS = 4.0
SEGMENTS = [(1.0, 1.5), (2.5, 3.0)]
SETTINGS = GateSettings()


def stems(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    num = round(SECONDS * RATE)
    return (0.1 * rng.standard_normal((2, num))).astype(np.float32), (0.3 * rng.standard_normal((2, num))).astype(np.float32)


def mask_distance_gain(segments, num_samples: int, settings: GateSettings) -> np.ndarray:
    """Reference: distance of every sample to the nearest sample of each widened phrase, minimum over them."""
    index = np.arange(num_samples)
    distance = np.full(num_samples, np.inf)
    for start, end in segments:
        first = round((start - settings.margin_before_s) * RATE)
        last = round((end + settings.margin_after_s) * RATE) - 1
        distance = np.minimum(distance, np.maximum(np.maximum(first - index, index - last), 0))
    closed = np.minimum(distance / round(settings.fade_s * RATE), 1.0)
    return settings.floor + (1 - settings.floor) * 0.5 * (1 + np.cos(np.pi * closed))


def test_stems_still_sum_to_the_mixture() -> None:
    vocals, accompaniment = stems()
    cleaned, rest = apply_sparse_gate_block(vocals, accompaniment, SEGMENTS, 0, RATE)
    np.testing.assert_allclose(cleaned + rest, vocals + accompaniment, atol=1e-6)


def test_the_stem_is_silent_away_from_phrases() -> None:
    vocals, accompaniment = stems()
    cleaned, _ = apply_sparse_gate_block(vocals, accompaniment, SEGMENTS, 0, RATE)
    quiet_until = round((SEGMENTS[0][0] - SETTINGS.margin_before_s - SETTINGS.fade_s) * RATE)
    assert SETTINGS.attenuation_db == math.inf
    assert not cleaned[:, :quiet_until].any()
    assert np.abs(cleaned[:, quiet_until + RATE // 100 : round(SEGMENTS[0][0] * RATE)]).max() > 0


def test_phrases_and_their_margins_are_untouched() -> None:
    vocals, accompaniment = stems()
    cleaned, _ = apply_sparse_gate_block(vocals, accompaniment, SEGMENTS, 0, RATE)
    for start, end in SEGMENTS:
        kept = slice(round((start - SETTINGS.margin_before_s) * RATE), round((end + SETTINGS.margin_after_s) * RATE))
        np.testing.assert_array_equal(cleaned[:, kept], vocals[:, kept])


def test_gain_matches_the_per_phrase_distance_reference() -> None:
    num = round(SECONDS * RATE)
    for settings in (SETTINGS, GateSettings(attenuation_db=30.0, margin_before_s=0.0, margin_after_s=0.0)):
        expected = mask_distance_gain(SEGMENTS, num, settings)
        np.testing.assert_allclose(gate_gain_block(SEGMENTS, 0, num, RATE, settings), expected, atol=1e-6)


def test_blocks_give_the_same_gain_as_the_whole_song() -> None:
    num = round(SECONDS * RATE)
    whole = gate_gain_block(SEGMENTS, 0, num, RATE)
    edges = [0, 777, 8000, 8001, 20000, num]
    pieces = [gate_gain_block(SEGMENTS, a, b - a, RATE) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)


def test_phrases_closer_than_the_margins_stay_open_between() -> None:
    gain = gate_gain_block([(1.0, 1.5), (1.7, 2.0)], 0, round(SECONDS * RATE), RATE)
    np.testing.assert_array_equal(gain[round(1.5 * RATE) : round(1.7 * RATE)], 1.0)


def test_no_phrase_silences_the_whole_stem() -> None:
    assert not gate_gain_block([], 0, 1000, RATE).any()
    assert gate_gain_block([], 0, 10, RATE, GateSettings(attenuation_db=20.0))[0] == pytest.approx(0.1)


def test_settings_reject_negative_margins() -> None:
    with pytest.raises(ValueError):
        GateSettings(margin_before_s=-0.1)
