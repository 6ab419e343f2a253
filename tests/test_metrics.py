"""Metrics: cSDR held to museval (the official evaluation's code), uSDR to its formula, sparse-region measures
to hand-built cases."""

from __future__ import annotations

import functools
import importlib.util
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from scipy.signal import lfilter

from utils.metrics import (
    FrameMask,
    bleed_level_db,
    bss_eval_images,
    csdr,
    false_activity_rate,
    framewise_sdr,
    silent_regions,
    summarize,
    track_metrics,
    usdr,
)

SR = 44100
MUSEVAL_TOLERANCE_DB = 1e-6


@pytest.fixture(scope="module")
def museval_metrics() -> ModuleType:
    """museval's `metrics.py` loaded on its own.

    Importing the `museval` package pulls musdb -> stempeg, which needs an ffmpeg binary; the metrics module
    needs only numpy and scipy. museval 0.4.0 also uses `np.float` (gone since NumPy 1.24): alias it back
    while the tests run (0.4.1 has the same computation and no longer needs the alias).
    """
    spec = importlib.util.find_spec("museval")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("museval is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "metrics.py"
    module_spec = importlib.util.spec_from_file_location("museval_metrics_only", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(np, "float", float, raising=False)
        yield module


def museval_images(museval_metrics: ModuleType, reference: np.ndarray, estimate: np.ndarray) -> dict:
    """museval's per-window image metrics, called exactly as the official evaluate.py calls it."""
    sdr, isr, _, sar, _ = museval_metrics.bss_eval(reference.T[None], estimate.T[None], window=SR, hop=SR)
    return {"sdr": sdr[0], "isr": isr[0], "sar": sar[0]}


@pytest.fixture(scope="module")
def museval_on_case(museval_metrics: ModuleType) -> Callable[[str], dict]:
    """museval's image metrics of a named comparison case, computed once per case."""
    return functools.cache(lambda name: museval_images(museval_metrics, *CASES[name]))


def vocal_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Stereo `(2, samples)`: harmonics, a syllable envelope and some noise, different in each channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SR)) / SR
    pitch = 220 * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / SR
    voice = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    left = 0.2 * voice + 0.01 * rng.standard_normal(len(t))
    right = 0.15 * np.roll(voice, 30) + 0.01 * rng.standard_normal(len(t))
    return np.stack([left, right])


def comparison_cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(reference, estimate) pairs, each `(2, samples)`, covering the framing and silence rules."""
    rng = np.random.default_rng(1)
    ref = vocal_like(3.5)
    silent_second = ref.copy()
    silent_second[:, SR : 2 * SR] = 0
    antiphase_second = ref.copy()
    antiphase_second[1, SR : 2 * SR] = -antiphase_second[0, SR : 2 * SR]
    return {
        "noise_at_20_db": (ref, ref + 0.1 * np.std(ref) * rng.standard_normal(ref.shape)),
        "delayed_7_samples": (ref, np.roll(ref, 7, axis=1)),
        "filtered": (ref, lfilter([0.6, 0.3, 0.1], [1.0, -0.2], ref, axis=1)),
        "channel_crosstalk": (ref, 0.8 * ref + 0.3 * ref[::-1] + 0.005 * rng.standard_normal(ref.shape)),
        "silent_second_in_reference": (silent_second, silent_second + 0.003 * rng.standard_normal(ref.shape)),
        "silent_second_in_estimate": (ref, silent_second),
        "antiphase_second": (antiphase_second, antiphase_second + 0.003 * rng.standard_normal(ref.shape)),
        "shorter_than_a_window": (ref[:, :30000], 0.7 * ref[:, :30000] + 0.01),
    }


CASES = comparison_cases()


@pytest.mark.parametrize("name", CASES)
def test_framewise_sdr_matches_museval(museval_on_case: Callable[[str], dict], name: str) -> None:
    reference, estimate = CASES[name]
    expected = museval_on_case(name)["sdr"]
    np.testing.assert_allclose(
        framewise_sdr(reference, estimate), expected, rtol=0, atol=MUSEVAL_TOLERANCE_DB
    )


@pytest.mark.parametrize("name", ["noise_at_20_db", "delayed_7_samples", "filtered", "channel_crosstalk"])
def test_bss_eval_images_filters_match_museval(museval_on_case: Callable[[str], dict], name: str) -> None:
    # ISR and SAR depend on the 512-tap filters (SDR does not), so they check the filter estimation.
    reference, estimate = CASES[name]
    expected = museval_on_case(name)
    ours = bss_eval_images(reference, estimate)
    for metric in ("sdr", "isr", "sar"):
        np.testing.assert_allclose(getattr(ours, metric), expected[metric], rtol=0, atol=MUSEVAL_TOLERANCE_DB)


@pytest.mark.parametrize("name", CASES)
def test_fast_sdr_matches_full_decomposition(name: str) -> None:
    reference, estimate = CASES[name]
    np.testing.assert_allclose(
        framewise_sdr(reference, estimate), bss_eval_images(reference, estimate).sdr, rtol=0, atol=1e-9
    )


@pytest.mark.slow
def test_csdr_matches_museval_on_a_30_second_track(museval_metrics: ModuleType) -> None:
    reference = vocal_like(30.25, seed=3)
    estimate = 0.9 * reference + 0.02 * vocal_like(30.25, seed=4)[::-1]
    expected = museval_images(museval_metrics, reference, estimate)["sdr"]
    assert len(expected) == 30
    assert abs(csdr(reference, estimate) - np.nanmedian(expected)) < MUSEVAL_TOLERANCE_DB


def test_framewise_sdr_has_one_window_per_whole_second() -> None:
    reference = vocal_like(3.99)
    assert framewise_sdr(reference, 0.5 * reference).shape == (3,)


def test_scaled_estimate_gives_known_csdr() -> None:
    reference = vocal_like(3.0)
    assert csdr(reference, 0.9 * reference) == pytest.approx(20.0, abs=1e-9)
    assert csdr(reference, 0.5 * reference) == pytest.approx(20 * np.log10(2), abs=1e-9)


def test_perfect_estimate_gives_infinite_csdr() -> None:
    reference = vocal_like(2.0)
    assert csdr(reference, reference.copy()) == np.inf


def test_csdr_ignores_a_silent_window() -> None:
    reference = vocal_like(3.0)
    reference[:, SR : 2 * SR] = 0
    estimate = 0.9 * reference
    estimate[:, SR : 2 * SR] = 0.5  # loud garbage where the reference is silent
    windows = framewise_sdr(reference, estimate)
    assert np.isnan(windows[1])
    assert csdr(reference, estimate) == pytest.approx(20.0, abs=1e-9)


def test_csdr_ignores_the_trailing_partial_second() -> None:
    reference = vocal_like(2.5)
    estimate = 0.9 * reference
    estimate[:, 2 * SR :] = -reference[:, 2 * SR :]
    assert csdr(reference, estimate) == pytest.approx(20.0, abs=1e-9)


def test_csdr_is_nan_when_every_window_is_silent() -> None:
    reference = np.zeros((2, int(2.5 * SR)))
    reference[:, 2 * SR :] = 0.1  # sound only in the ignored partial second
    assert np.isnan(csdr(reference, reference.copy()))


@pytest.mark.parametrize("silent", ["reference", "estimate"])
def test_silent_track_raises(silent: str) -> None:
    sound, zeros = vocal_like(2.0), np.zeros((2, 2 * SR))
    reference, estimate = (zeros, sound) if silent == "reference" else (sound, zeros)
    with pytest.raises(ValueError, match=f"the {silent} is silent"):
        csdr(reference, estimate)


def test_mismatched_shapes_raise() -> None:
    with pytest.raises(ValueError, match="must match"):
        csdr(vocal_like(2.0), vocal_like(2.5))


def test_usdr_of_half_scaled_estimate_is_6_02_db() -> None:
    reference = vocal_like(2.0)
    assert usdr(reference, 0.5 * reference) == pytest.approx(6.0206, abs=1e-4)


def test_usdr_follows_the_mdx_formula_by_hand() -> None:
    reference = np.array([[3.0, 0.0], [0.0, 4.0]])  # energy 25 over both channels
    estimate = np.array([[3.0, 0.0], [0.0, 0.0]])  # error energy 16
    assert usdr(reference, estimate) == pytest.approx(10 * np.log10((25 + 1e-7) / (16 + 1e-7)), abs=1e-12)


def test_usdr_of_perfect_estimate_is_bounded_by_its_epsilon() -> None:
    reference = np.full((2, 4), 0.5)  # energy 2
    assert usdr(reference, reference) == pytest.approx(10 * np.log10((2 + 1e-7) / 1e-7), abs=1e-9)


def test_usdr_of_silent_reference_and_estimate_is_zero() -> None:
    assert usdr(np.zeros((2, 100)), np.zeros((2, 100))) == 0.0


def vocals_sound_silence_whisper() -> np.ndarray:
    """3 s of `(2, samples)`: loud vocals, digital silence, then noise at -70 dBFS RMS."""
    vocals = vocal_like(3.0)
    vocals[:, SR : 2 * SR] = 0
    vocals[:, 2 * SR :] = 10 ** (-70 / 20) * np.sign(np.sin(np.arange(SR) * 0.3))
    return vocals


def test_silent_regions_flags_100_ms_frames_below_minus_60_dbfs() -> None:
    silent = silent_regions(vocals_sound_silence_whisper(), SR)
    assert silent.frame_rate == 10
    np.testing.assert_array_equal(silent.values, np.repeat([False, True, True], 10))


def test_silent_regions_counts_vocals_far_below_the_mixture() -> None:
    square = np.sign(np.sin(np.arange(2 * SR) * 0.3))[None].repeat(2, axis=0)  # RMS 1, i.e. 0 dBFS
    vocals = 10 ** (-50 / 20) * square  # above the -60 dBFS floor
    accompaniment = 10 ** (-5 / 20) * square * (np.arange(2 * SR) < SR)  # 45 dB above the vocals, then silent
    silent = silent_regions(vocals, SR, mixture=vocals + accompaniment)
    np.testing.assert_array_equal(silent.values, np.repeat([True, False], 10))


def test_silent_regions_keeps_a_partial_last_frame() -> None:
    assert len(silent_regions(np.zeros((2, SR + 100)), SR).values) == 11


def test_frame_mask_maps_frames_to_samples() -> None:
    mask = FrameMask(np.array([False, True, False]), frame_rate=10)
    per_sample = mask.sample_mask(3 * 4410 + 5, SR)
    assert per_sample[:4410].sum() == 0 and per_sample[4410:8820].all() and per_sample[8820:].sum() == 0


def test_frame_mask_edges_survive_inexact_frame_rates() -> None:
    mask = FrameMask(np.array([False, True]), frame_rate=SR / 3000)  # 14.7 frames/s, not exact in binary
    per_sample = mask.sample_mask(6000, SR)
    assert per_sample[:3000].sum() == 0 and per_sample[3000:].all()


def test_bleed_of_zero_estimate_is_minus_infinity() -> None:
    vocals = vocals_sound_silence_whisper()
    mixture = vocals + 0.3 * vocal_like(3.0, seed=5)
    silent = silent_regions(vocals, SR)
    assert bleed_level_db(np.zeros_like(vocals), mixture, silent, SR) == -np.inf


def test_bleed_is_the_estimate_level_relative_to_the_mixture_in_silence() -> None:
    vocals = vocals_sound_silence_whisper()
    mixture = vocals + 0.3 * vocal_like(3.0, seed=5)
    estimate = vocals.copy()
    estimate[:, SR:] = 0.01 * mixture[:, SR:]  # leaks the mixture at -40 dB in the silent part
    assert bleed_level_db(estimate, mixture, silent_regions(vocals, SR), SR) == pytest.approx(-40.0, abs=1e-9)


def test_bleed_is_nan_without_silent_regions() -> None:
    vocals = vocal_like(2.0)
    assert np.isnan(bleed_level_db(vocals, vocals, silent_regions(vocals, SR), SR))


def test_bleed_rejects_a_mask_of_another_length() -> None:
    vocals = vocal_like(2.0)
    with pytest.raises(ValueError, match="frame rate"):
        bleed_level_db(vocals, vocals, FrameMask(np.ones(40, dtype=bool), frame_rate=10), SR)


def test_false_activity_rate_with_equal_frame_rates() -> None:
    silent = FrameMask(np.array([True, True, True, True, False]), frame_rate=10)
    active = FrameMask(np.array([True, False, False, False, True]), frame_rate=10)
    assert false_activity_rate(active, silent) == 0.25


def test_false_activity_rate_weighs_time_across_frame_rates() -> None:
    silent = FrameMask(np.array([False, True, True]), frame_rate=10)  # silent from 0.1 s to 0.3 s
    detector = np.zeros(30, dtype=bool)
    detector[8:13] = True  # fires from 0.08 s to 0.13 s: 0.03 s of it inside the silence
    rate = false_activity_rate(FrameMask(detector, frame_rate=100), silent)
    assert rate == pytest.approx(0.03 / 0.2, abs=1e-12)


def test_false_activity_rate_accepts_masks_a_frame_apart() -> None:
    silent = FrameMask(np.ones(10, dtype=bool), frame_rate=10)
    active = FrameMask(np.ones(101, dtype=bool), frame_rate=100)  # a centred STFT's extra frame
    assert false_activity_rate(active, silent) == 1.0


def test_false_activity_rate_rejects_a_wrong_frame_rate() -> None:
    silent = FrameMask(np.ones(10, dtype=bool), frame_rate=10)
    with pytest.raises(ValueError, match="frame rate"):
        false_activity_rate(FrameMask(np.ones(100, dtype=bool), frame_rate=50), silent)


def test_false_activity_rate_is_nan_without_silence() -> None:
    silent = FrameMask(np.zeros(10, dtype=bool), frame_rate=10)
    assert np.isnan(false_activity_rate(FrameMask(np.ones(10, dtype=bool), frame_rate=10), silent))


def test_track_metrics_reports_every_measure() -> None:
    vocals = vocals_sound_silence_whisper()
    mixture = vocals + 0.3 * vocal_like(3.0, seed=5)
    active = FrameMask(np.ones(30, dtype=bool), frame_rate=10)
    metrics = track_metrics(vocals, 0.9 * vocals, mixture, SR, active=active)
    assert set(metrics) == {"csdr", "usdr", "bleed_db", "silent_fraction", "false_activity_rate"}
    assert metrics["silent_fraction"] == pytest.approx(2 / 3)
    assert metrics["false_activity_rate"] == 1.0


def test_summarize_ignores_nan_and_names_the_musdb_headline() -> None:
    per_track = [
        {"track": "a", "csdr": 1.0, "usdr": 1.0},
        {"track": "b", "csdr": 2.0, "usdr": np.nan},
        {"track": "c", "csdr": 9.0, "usdr": 3.0, "bleed_db": -50.0},
    ]
    summary = summarize(per_track)
    assert set(summary) == {"csdr", "usdr", "bleed_db"}
    assert summary["csdr"] == {
        "count": 3,
        "mean": 4.0,
        "std": pytest.approx(np.std([1, 2, 9])),
        "median": 2.0,
        "headline": 2.0,
    }
    assert summary["usdr"]["count"] == 2 and summary["usdr"]["headline"] == 2.0
    assert summary["bleed_db"]["count"] == 1 and "headline" not in summary["bleed_db"]


def test_summarize_of_a_metric_without_values_is_nan() -> None:
    summary = summarize([{"csdr": float("nan")}])
    assert summary["csdr"]["count"] == 0 and np.isnan(summary["csdr"]["median"])


def test_summarize_keeps_a_silent_stems_minus_infinity_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = summarize([{"bleed_db": -30.0}, {"bleed_db": -np.inf}, {"bleed_db": -40.0}])
    stats = summary["bleed_db"]
    assert stats["median"] == -40.0 and stats["mean"] == -np.inf and np.isnan(stats["std"])
