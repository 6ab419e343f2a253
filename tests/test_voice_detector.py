"""The learned voice detector: labels, block-friendly features, the classifier's reach, and the shipped weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from utils import voice_detector
from utils.voice_detector import (
    DETECTOR_DIR,
    MIXTURE_ONLY,
    WITH_STEM,
    DetectorConfig,
    FrameClassifier,
    VoiceStream,
    detect_voice,
    features_from_mel,
    frame_f1,
    frame_features,
    load_detector,
    mel_power,
    phrases_from_probability,
    save_detector,
    true_voice_frames,
    voice_probability,
)

SR = 16000
HOP = round(DetectorConfig().activity.hop_s * SR)


def noise(seconds: float, level: float, seed: int) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal((2, round(seconds * SR)))).astype(np.float32)


def tone(seconds: float, start: float, end: float, level: float) -> np.ndarray:
    out = np.zeros((2, round(seconds * SR)), dtype=np.float32)
    t = np.arange(round((end - start) * SR)) / SR
    out[:, round(start * SR) : round(start * SR) + t.size] = level * np.sin(2 * np.pi * 330.0 * t)
    return out


def test_labels_mark_a_voice_over_the_band_and_not_one_far_under_it() -> None:
    band = noise(6.0, 0.1, 0)
    loud = tone(6.0, 2.0, 4.0, 0.1)
    truth = true_voice_frames(loud, band + loud, SR)
    assert truth[round(2.1 * SR / HOP) : round(3.9 * SR / HOP)].all()
    assert not truth[: round(1.8 * SR / HOP)].any() and not truth[round(4.3 * SR / HOP) :].any()
    faint = tone(6.0, 2.0, 4.0, 0.002)  # 34 dB under the band
    assert not true_voice_frames(faint, band + faint, SR).any()


def test_labels_bridge_a_breath_inside_a_line() -> None:
    band = noise(6.0, 0.05, 1)
    line = tone(6.0, 1.0, 2.0, 0.1) + tone(6.0, 2.3, 3.5, 0.1)
    truth = true_voice_frames(line, band + line, SR)
    assert truth[round(2.1 * SR / HOP) : round(2.2 * SR / HOP)].all()


def test_mel_power_of_blocks_equals_the_whole_song() -> None:
    config = DetectorConfig()
    audio = noise(3.0, 0.1, 2)
    frames = -(-audio.shape[1] // HOP)
    whole = mel_power(audio, SR, config, 0, frames)
    # A block holding samples [offset, offset + n) computes its frames as if the rest of the song were there,
    # as long as it holds half a window either side of them.
    first, count, margin = 40, 30, 1024
    offset = first * HOP - margin
    block = audio[:, offset : offset + count * HOP + 2 * margin]
    np.testing.assert_allclose(mel_power(block, SR, config, first, count, offset), whole[first : first + count],
                               rtol=1e-6, atol=1e-12)


def test_with_stem_features_ignore_the_song_loudness_except_its_level() -> None:
    config = DetectorConfig()
    mixture, vocals = noise(2.0, 0.1, 3), noise(2.0, 0.01, 4)
    loud, quiet = frame_features(mixture, SR, config, vocals), frame_features(0.1 * mixture, SR, config, 0.1 * vocals)
    level = config.mel_bands
    np.testing.assert_allclose(np.delete(loud, level, axis=1), np.delete(quiet, level, axis=1), atol=0.01)
    np.testing.assert_allclose(loud[:, level] - quiet[:, level], 20.0, atol=1e-3)


def test_each_variant_wants_its_own_inputs() -> None:
    mixture = noise(1.0, 0.1, 5)
    with pytest.raises(ValueError):
        frame_features(mixture, SR, DetectorConfig(variant=WITH_STEM))
    with pytest.raises(ValueError):
        frame_features(mixture, SR, DetectorConfig(variant=MIXTURE_ONLY), mixture)


def test_a_frame_sees_only_its_context_window() -> None:
    torch.manual_seed(0)
    classifier = FrameClassifier(DetectorConfig()).eval()
    context = classifier.config.context_frames
    features = torch.randn(1, 200, classifier.config.num_features)
    changed = features.clone()
    changed[:, 100 + context + 1 :] += 5.0
    with torch.inference_mode():
        before, after = classifier(features), classifier(changed)
    torch.testing.assert_close(before[:, : 101], after[:, : 101])
    assert not torch.allclose(before[:, 101 : 100 + context + 2], after[:, 101 : 100 + context + 2])


def test_saved_detectors_load_with_their_config(tmp_path) -> None:
    torch.manual_seed(1)
    classifier = FrameClassifier(DetectorConfig(variant=MIXTURE_ONLY, channels=8)).eval()
    save_detector(classifier, tmp_path / "d.safetensors", {"note": "test"})
    loaded = load_detector(tmp_path / "d.safetensors")
    assert loaded.config == classifier.config
    features = torch.randn(1, 50, classifier.config.num_features)
    torch.testing.assert_close(loaded(features), classifier(features))


def test_probability_hysteresis_and_phrase_rules() -> None:
    config = DetectorConfig()
    probability = np.zeros(500, dtype=np.float32)
    probability[100:200] = 0.9
    probability[200:210] = 0.4  # between off and on: stays on
    probability[210:300] = 0.9
    probability[320:330] = 0.9  # 0.4 s gap bridged... then a 0.2 s run joins the phrase
    probability[450:455] = 0.9  # a 0.1 s blip: dropped
    active, segments = phrases_from_probability(probability, 500 * HOP, SR, config)
    assert segments == [(100 * HOP / SR, 330 * HOP / SR)]
    assert active.sum() == 230


def test_frame_f1_counts_hits_against_both_totals() -> None:
    truth = np.array([1, 1, 1, 1, 0, 0], dtype=bool)
    assert frame_f1(np.array([1, 1, 0, 0, 1, 0], dtype=bool), truth) == pytest.approx(2 * 2 / 7)
    assert frame_f1(np.zeros(6, dtype=bool), np.zeros(6, dtype=bool)) == 1.0


def test_detect_voice_returns_the_app_activity_type() -> None:
    torch.manual_seed(2)
    classifier = FrameClassifier(DetectorConfig(channels=8)).eval()
    mixture, vocals = noise(2.0, 0.1, 6), noise(2.0, 0.01, 7)
    activity = detect_voice(mixture, SR, vocals, [classifier])
    assert activity.voice_probability.shape == activity.level_db.shape == activity.active.shape
    assert activity.summary()["detector"] == "learned"
    assert set(activity.to_json()) == {"segments", "summary", "params"}


def test_two_detectors_decide_on_their_mean_probability_with_the_last_ones_hysteresis() -> None:
    torch.manual_seed(3)
    on_mixture = FrameClassifier(DetectorConfig(variant=MIXTURE_ONLY, channels=8)).eval()
    with_stem = FrameClassifier(DetectorConfig(channels=8, on_probability=0.55, off_probability=0.45)).eval()
    mixture, vocals = noise(3.0, 0.1, 8), noise(3.0, 0.02, 9)
    alone = [detect_voice(mixture, SR, vocals, [c]).voice_probability for c in (on_mixture, with_stem)]
    together = detect_voice(mixture, SR, vocals, [on_mixture, with_stem])
    np.testing.assert_allclose(together.voice_probability, (alone[0] + alone[1]) / 2, atol=1e-6)
    expected, _ = phrases_from_probability(together.voice_probability, mixture.shape[1], SR, with_stem.config)
    assert np.array_equal(together.active, expected)


# Frame F1 the shipped detectors must beat on one unseen generated song: mixture-only 0.96 there, the two
# together on the bundled model's stem 0.97 (with-stem alone 0.98; measured when they were shipped).
SHIPPED_F1 = 0.8


@pytest.fixture(scope="module")
def unseen_song():
    """A 10-s FluidSynth song from an unseen seed: (mixture, vocals, sample rate)."""
    from utils.synth import SongConfig, generate_song
    from utils.synth.fluid import fluidsynth_available

    if not fluidsynth_available():
        pytest.skip("the detectors are trained on FluidSynth songs")
    song = generate_song(424_242, SongConfig(duration_s=10.0, vocal_fraction=0.4, backend="fluidsynth"))
    return song.mixture, song.stems["vocals"], song.sample_rate


@pytest.mark.slow
@pytest.mark.skipif(not (DETECTOR_DIR / f"{MIXTURE_ONLY}.safetensors").is_file(), reason="no shipped detector")
def test_shipped_mixture_only_detector_finds_the_voice_of_an_unseen_song(unseen_song) -> None:
    mixture, vocals, rate = unseen_song
    activity = detect_voice(mixture, rate, None, [load_detector(variant=MIXTURE_ONLY)])
    assert frame_f1(activity.active, true_voice_frames(vocals, mixture, rate)) > SHIPPED_F1


@pytest.mark.slow
def test_shipped_detectors_together_find_the_voice_in_the_bundled_models_stem(unseen_song) -> None:
    from model.inference.separator import SeparationSettings, Separator
    from model.weights.pretrained import load_model

    mixture, vocals, rate = unseen_song
    stem = Separator(load_model().model, SeparationSettings()).separate(mixture)["vocals"]
    both = [load_detector(variant=MIXTURE_ONLY), load_detector(variant=WITH_STEM)]
    activity = detect_voice(mixture, rate, stem, both)
    assert frame_f1(activity.active, true_voice_frames(vocals, mixture, rate)) > SHIPPED_F1


@pytest.mark.parametrize("variant", [WITH_STEM, MIXTURE_ONLY])
@pytest.mark.parametrize("work_block", [1, 9000, voice_detector.STREAM_BLOCK_SAMPLES])
def test_streaming_in_blocks_gives_the_whole_song_probabilities(variant: str, work_block: int, monkeypatch) -> None:
    monkeypatch.setattr(voice_detector, "STREAM_BLOCK_SAMPLES", work_block)  # every push / some / only finish
    torch.manual_seed(3)
    classifier = FrameClassifier(DetectorConfig(variant=variant, channels=8)).eval()
    mixture, vocals = noise(5.0, 0.1, 8), noise(5.0, 0.02, 9)
    stem = vocals if variant == WITH_STEM else None
    whole = voice_probability(classifier, frame_features(mixture, SR, classifier.config, stem))
    stream, pieces, start = VoiceStream(classifier, SR), [], 0
    for size in [1000, 17, 5000, 30000, 123, 44000]:
        block = slice(start, start + size)
        pieces.append(stream.push(mixture[:, block], None if stem is None else stem[:, block]))
        start += size
    pieces.append(stream.finish())
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-5)


def test_training_tunes_the_hysteresis_on_validation(monkeypatch):
    from scripts import train_detector

    truth = np.r_[np.zeros(150, bool), np.ones(150, bool)]  # 3 s of no voice, then 3 s of voice
    probability = np.where(truth, 0.95, 0.65).astype(np.float32)  # a detector too eager where nobody sings
    monkeypatch.setattr(train_detector, "voice_probability", lambda classifier, features: probability)
    classifier = FrameClassifier(DetectorConfig(variant=MIXTURE_ONLY))
    features = np.zeros((truth.size, classifier.config.num_features), np.float32)
    untuned = train_detector.validation_f1(classifier, [(features, truth)])
    tuned, f1 = train_detector.tune_thresholds(classifier, [(features, truth)])
    assert untuned < 0.7 and f1 > 0.95
    assert tuned.config.on_probability == 0.7 and tuned.config.off_probability == pytest.approx(0.5)


def test_random_eq_changes_every_frame_by_one_smooth_curve_and_keeps_the_stem_ratios():
    from scripts import train_detector

    rng = np.random.default_rng(3)
    bands = 16
    mixture_mel = rng.uniform(1e-6, 1e-3, (50, bands))
    features = features_from_mel(mixture_mel, 0.1 * mixture_mel)
    augmented = train_detector.random_eq(features, bands, 6.0, np.random.default_rng(4))
    band_db = features[:, :bands] + features[:, bands : bands + 1]  # shape + level = each band's dB
    gain_db = augmented[:, :bands] + augmented[:, bands : bands + 1] - band_db
    np.testing.assert_allclose(gain_db, np.broadcast_to(gain_db[0], gain_db.shape), atol=1e-3)
    assert np.abs(gain_db[0]).max() == pytest.approx(6.0, abs=1e-3) and np.abs(np.diff(gain_db[0])).max() < 3.0
    np.testing.assert_array_equal(augmented[:, bands + 1 :], features[:, bands + 1 :])
    np.testing.assert_array_equal(features, features_from_mel(mixture_mel, 0.1 * mixture_mel))  # input untouched


def test_training_scores_the_two_detectors_together_as_the_app_runs_them(tmp_path):
    from scripts import train_detector

    torch.manual_seed(5)
    rng = np.random.default_rng(5)
    pair = [FrameClassifier(DetectorConfig(variant=v, channels=8, mel_bands=16)).eval() for v in (MIXTURE_ONLY, WITH_STEM)]
    for classifier in pair:
        save_detector(classifier, tmp_path / f"{classifier.config.variant}.safetensors", {})
    mixture_mel, stem_mel = rng.uniform(1e-6, 1e-3, (2, 300, 16))
    labels = np.r_[np.zeros(150, bool), np.ones(150, bool)]
    song = {"labels": labels, "mixture_mel": mixture_mel, "stem_mels": [stem_mel], "separated": True}
    f1 = train_detector.pair_validation_f1(tmp_path, [song])
    mean = (voice_probability(pair[0], features_from_mel(mixture_mel, None))
            + voice_probability(pair[1], features_from_mel(mixture_mel, stem_mel))) / 2
    decided, _ = phrases_from_probability(mean, 300 * HOP, SR, pair[1].config)
    assert f1 == pytest.approx(frame_f1(decided, labels))
    assert train_detector.pair_validation_f1(tmp_path, [{**song, "separated": False}]) is None
    (tmp_path / f"{MIXTURE_ONLY}.safetensors").unlink()
    assert train_detector.pair_validation_f1(tmp_path, [song]) is None
