"""Vocal activity: where the voice is in a separated vocal stem."""

from __future__ import annotations

import json

import numpy as np
import pytest

from utils.activity import (
    ABSOLUTE_FLOOR_DB,
    ActivityParams,
    VocalActivity,
    activity_mask,
    detect_vocal_activity,
    hysteresis,
)

SR = 44100
TOLERANCE_S = 0.1
NO_MIN_LENGTHS = ActivityParams(min_gap_s=0.0, min_phrase_s=0.0)


def sine_rms(level_dbfs: float, seconds: float, hz: float = 220.0) -> np.ndarray:
    """A stereo sine `(2, samples)` whose RMS is `level_dbfs`."""
    t = np.arange(round(seconds * SR)) / SR
    tone = np.sqrt(2) * 10 ** (level_dbfs / 20) * np.sin(2 * np.pi * hz * t)
    return np.stack([tone, tone]).astype(np.float32)


def stem(
    seconds: float, regions: list[tuple[float, float, float]], floor_dbfs: float | None = -70.0
) -> np.ndarray:
    """`(2, samples)`: noise at `floor_dbfs` plus a sine at `level` over each `(start, end, level)`."""
    rng = np.random.default_rng(0)
    num = round(seconds * SR)
    out = np.zeros((2, num), dtype=np.float32)
    if floor_dbfs is not None:
        out += (10 ** (floor_dbfs / 20) * rng.standard_normal((2, num))).astype(np.float32)
    for start, end, level in regions:
        a, b = round(start * SR), round(end * SR)
        out[:, a:b] += sine_rms(level, (b - a) / SR)
    return out


def test_phrases_are_found_within_a_tenth_of_a_second():
    truth = [(1.0, 3.0), (5.5, 6.5), (8.0, 12.0)]
    activity = detect_vocal_activity(stem(14.0, [(a, b, -20.0) for a, b in truth]), SR)
    assert len(activity.segments) == len(truth)
    for (start, end), (true_start, true_end) in zip(activity.segments, truth, strict=True):
        assert abs(start - true_start) <= TOLERANCE_S and abs(end - true_end) <= TOLERANCE_S


def test_bleed_40_db_under_the_voice_is_not_voice():
    # Bleed at −50 dBFS is above the absolute floor (−60); only the relative threshold keeps it out.
    activity = detect_vocal_activity(stem(10.0, [(3.0, 6.0, -10.0)], floor_dbfs=-50.0), SR)
    assert len(activity.segments) == 1
    assert activity.on_threshold_db == pytest.approx(-40.0, abs=1.0)


def test_a_sparse_voice_still_sets_the_threshold_over_bleed():
    # 1.5 s of voice in a minute of bleed: the loudest second is voice, so the bleed stays out.
    activity = detect_vocal_activity(stem(60.0, [(30.0, 31.5, -10.0)], floor_dbfs=-50.0), SR)
    assert len(activity.segments) == 1
    assert activity.voiced_fraction < 0.03


def test_faint_noise_alone_is_not_voice():
    activity = detect_vocal_activity(stem(5.0, [], floor_dbfs=-70.0), SR)
    assert activity.segments == []
    assert activity.on_threshold_db == ABSOLUTE_FLOOR_DB


def test_hysteresis_keeps_a_wobbling_voice_on():
    # Loud 2 s set "on" at −40 and "off" at −46; then the voice wobbles between −43 and −38 every 0.6 s.
    wobble = [(2.0 + 0.6 * i, 2.6 + 0.6 * i, -43.0 if i % 2 == 0 else -38.0) for i in range(10)]
    vocals = stem(10.0, [(0.0, 2.0, -10.0), *wobble], floor_dbfs=None)
    assert len(detect_vocal_activity(vocals, SR, NO_MIN_LENGTHS).segments) == 1
    no_hysteresis = ActivityParams(min_gap_s=0.0, min_phrase_s=0.0, hysteresis_db=0.0)
    assert len(detect_vocal_activity(vocals, SR, no_hysteresis).segments) > 1


def test_hysteresis_matches_a_plain_state_machine():
    level = np.random.default_rng(1).uniform(-60, 0, 5000)
    state, expected = False, []
    for value in level:
        state = value > -30 if (value > -30 or value < -36) else state
        expected.append(state)
    np.testing.assert_array_equal(hysteresis(level, -30.0, -36.0), expected)


def test_gaps_shorter_than_half_a_second_are_bridged():
    short_gap = detect_vocal_activity(stem(8.0, [(1.0, 3.0, -20.0), (3.3, 5.0, -20.0)]), SR)
    long_gap = detect_vocal_activity(stem(8.0, [(1.0, 3.0, -20.0), (4.0, 5.0, -20.0)]), SR)
    assert len(short_gap.segments) == 1
    assert len(long_gap.segments) == 2


def test_blips_shorter_than_a_phrase_are_dropped():
    assert detect_vocal_activity(stem(5.0, [(2.0, 2.05, -20.0)]), SR).segments == []
    assert len(detect_vocal_activity(stem(5.0, [(2.0, 2.4, -20.0)]), SR).segments) == 1


def test_an_all_silent_stem_has_no_voice():
    activity = detect_vocal_activity(np.zeros((2, 3 * SR), dtype=np.float32), SR)
    assert activity.segments == [] and not activity.active.any()
    assert activity.voiced_fraction == 0.0
    assert activity.longest_silence_s == pytest.approx(3.0)


def test_a_stem_shorter_than_one_frame_gives_one_frame():
    vocals = sine_rms(-20.0, 0.01)
    assert detect_vocal_activity(vocals, SR).level_db.shape == (1,)
    assert detect_vocal_activity(vocals, SR).segments == []  # shorter than a phrase
    assert detect_vocal_activity(vocals, SR, NO_MIN_LENGTHS).segments == [(0.0, 0.01)]


def test_a_constant_level_stem_is_one_phrase():
    activity = detect_vocal_activity(sine_rms(-30.0, 4.0), SR)
    assert activity.segments == [(0.0, 4.0)]
    assert activity.voiced_fraction == 1.0


def test_summary_counts_seconds_percent_and_silences():
    activity = VocalActivity(
        frame_times_s=np.zeros(0),
        level_db=np.zeros(0),
        reference_db=-12.0,
        on_threshold_db=-42.0,
        off_threshold_db=-48.0,
        active=np.zeros(0, dtype=bool),
        segments=[(1.0, 3.0), (5.0, 6.0)],
        duration_s=10.0,
        params=ActivityParams(),
    )
    assert activity.summary() == {
        "detector": "level",
        "duration_s": 10.0,
        "voiced_s": 3.0,
        "voiced_percent": 30.0,
        "phrase_count": 2,
        "longest_silence_s": 4.0,
        "reference_dbfs": -12.0,
        "on_threshold_dbfs": -42.0,
        "off_threshold_dbfs": -48.0,
    }


def test_to_json_holds_segments_summary_and_params_only():
    activity = detect_vocal_activity(stem(6.0, [(1.0, 2.0, -20.0)]), SR)
    written = json.loads(json.dumps(activity.to_json()))
    assert set(written) == {"segments", "summary", "params"}
    assert written["segments"] == [[round(a, 3), round(b, 3)] for a, b in activity.segments]
    assert written["params"]["hop_s"] == ActivityParams().hop_s


def test_sample_mask_covers_exactly_the_segments():
    vocals = stem(6.0, [(1.0, 2.0, -20.0), (3.0, 4.5, -20.0)])
    activity = detect_vocal_activity(vocals, SR)
    mask = activity_mask(activity, vocals.shape[1], SR)
    assert mask.shape == (vocals.shape[1],)
    assert mask.sum() / SR == pytest.approx(activity.voiced_s, abs=1 / SR)
    for start, end in activity.segments:
        assert mask[round(start * SR)] and mask[round(end * SR) - 1]
        assert not mask[round(start * SR) - 1]


def test_ten_minutes_of_stereo_give_every_phrase():
    vocals = np.tile(stem(2.0, [(0.5, 1.5, -20.0)]), (1, 300))
    assert detect_vocal_activity(vocals, SR).phrase_count == 300


def test_params_reject_a_frame_shorter_than_the_hop():
    with pytest.raises(ValueError):
        ActivityParams(hop_s=0.05, frame_s=0.02)


def test_bleed_far_under_the_mixture_is_not_voice():
    """Leakage 26 dB under a loud band is not a phrase, even if as loud as a soft verse elsewhere."""
    sr = 44100
    rng = np.random.default_rng(5)
    band = np.concatenate([0.02 * rng.standard_normal((2, 4 * sr)), 0.5 * rng.standard_normal((2, 4 * sr))], axis=1)
    vocals = np.zeros_like(band)
    vocals[:, : 2 * sr] = 0.05 * np.sin(2 * np.pi * 330 * np.arange(2 * sr) / sr)  # a soft verse over a quiet band
    vocals[:, 4 * sr :] = 0.025 * band[:, 4 * sr :]  # bleed during the loud instrumental
    mixture = (band + vocals).astype(np.float32)
    alone = detect_vocal_activity(vocals.astype(np.float32), sr)
    with_mix = detect_vocal_activity(vocals.astype(np.float32), sr, mixture=mixture)
    assert len(alone.segments) == 2  # level alone cannot tell the bleed from the verse
    assert len(with_mix.segments) == 1 and with_mix.segments[0][1] < 2.2
