"""The one pipeline behind the CLI and the app: same samples as before the restructuring, flat memory pieces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import tiny_model, tiny_service
from model.inference.cli import main
from model.inference.pipeline import OutputSettings, SongSettings, choose_detectors, separate_file
from model.inference.separator import SeparationSettings, Separator
from model.stft import SAMPLE_RATE
from model.weights.pretrained import load_model
from ui.results import SeparationOptions
from utils.cleanup import GateSettings, gate_gain
from utils.voice_detector import detect_voice, load_detector

GOLDEN = Path(__file__).parent / "golden"
"""Stems written by the code before the restructuring (commit 82fa03c) for `_golden_song`, with `tiny_model()`:
the CLI with `--format flac --chunk-seconds 1` and the app's service with its defaults (1-s test chunks), both
in float32 (the reference precision; `auto` now picks the bf16 fast path on CPUs that have it) and without the
clean-up (now on by default)."""
LSB_24 = 1  # in 24-bit integer steps


def _golden_song(path: Path) -> Path:
    """1.5 s of two tones and a little noise, 16-bit PCM; the input the golden stems were made from."""
    t = np.arange(int(1.5 * SAMPLE_RATE)) / SAMPLE_RATE
    rng = np.random.default_rng(7)
    tones = np.stack([0.3 * np.sin(2 * np.pi * 220 * t) * (t > 0.6), 0.2 * np.sin(2 * np.pi * 110 * t)]).T
    sf.write(path, (tones + 0.01 * rng.standard_normal((t.size, 2))).astype(np.float32), SAMPLE_RATE,
             subtype="PCM_16")
    return path


def _assert_same_samples(written: Path, golden: Path) -> None:
    got, rate = sf.read(written, dtype="int32")
    expected, expected_rate = sf.read(golden, dtype="int32")
    assert rate == expected_rate and got.shape == expected.shape
    assert np.abs((got >> 8) - (expected >> 8)).max() <= LSB_24


@pytest.mark.parametrize("extension", ["wav", "flac"])
def test_cli_writes_the_same_samples_as_before(tmp_path: Path, tiny_checkpoint: Path, extension: str) -> None:
    song = _golden_song(tmp_path / f"song.{extension}")
    code = main([str(song), "-o", str(tmp_path / "out"), "--format", "flac", "--chunk-seconds", "1",
                 "--precision", "fp32", "--no-clean-up", "--checkpoint", str(tiny_checkpoint)])
    assert code == 0
    for stem in ("vocals", "accompaniment"):
        _assert_same_samples(tmp_path / "out" / "song" / f"{stem}.flac", GOLDEN / f"cli_song_{extension}_{stem}.flac")


@pytest.mark.parametrize("extension", ["wav", "flac"])
def test_app_writes_the_same_samples_as_before(tmp_path: Path, extension: str) -> None:
    result = tiny_service(precision="fp32").separate(
        _golden_song(tmp_path / f"song.{extension}"), SeparationOptions(clean_up=False)
    )
    _assert_same_samples(result.vocals_path, GOLDEN / f"app_song_{extension}_vocals.flac")
    _assert_same_samples(result.accompaniment_path, GOLDEN / f"app_song_{extension}_accompaniment.flac")


def test_clean_up_moves_what_it_removes_into_the_accompaniment(tmp_path: Path) -> None:
    song = _golden_song(tmp_path / "song.wav")
    silenced, _ = sf.read(song, dtype="float32")
    silenced[round(0.5 * SAMPLE_RATE) : SAMPLE_RATE] = 0.0  # half a second of silence: no voice there
    sf.write(song, silenced, SAMPLE_RATE, subtype="FLOAT")
    targets = {"vocals": tmp_path / "v.wav", "accompaniment": tmp_path / "a.wav"}
    separator = Separator(tiny_model(), SeparationSettings(chunk_seconds=0.5, precision="fp32"))
    gate = GateSettings(attenuation_db=60.0)
    result = separate_file(song, separator, targets, SongSettings(output=OutputSettings("wav", 32), clean_up=gate))
    vocals, accompaniment, mixture = (sf.read(path, dtype="float32")[0] for path in (*targets.values(), song))
    assert np.abs(vocals + accompaniment - mixture).max() < 1e-6
    plain = separator.separate(np.ascontiguousarray(mixture.T))["vocals"].T
    gain = gate_gain(result.activity, mixture.shape[0], SAMPLE_RATE, gate)
    assert gain.min() < 1e-2  # the song has stretches the gate closes on
    assert np.allclose(vocals, plain * gain[:, None], atol=1e-6)


def test_streamed_separation_equals_the_whole_array_one() -> None:
    rng = np.random.default_rng(3)
    mixture = (0.2 * rng.standard_normal((2, SAMPLE_RATE * 2 + 321))).astype(np.float32)
    separator = Separator(tiny_model(), SeparationSettings(chunk_seconds=0.25, overlap=0.25, batch_size=3, precision="fp32"))
    whole = separator.separate(mixture)["vocals"]
    cuts = np.sort(rng.choice(mixture.shape[1], 11, replace=False))
    blocks = [block for block in np.split(mixture, cuts, axis=1) if block.shape[1]]
    assert np.array_equal(np.concatenate(list(separator.separate_stream(blocks)), axis=1), whole)


def test_auto_reads_the_stem_only_with_the_weights_the_detector_learnt_from(caplog) -> None:
    bundled = Separator(load_model().model, SeparationSettings(precision="bf16"))  # weights cast in place
    tiny = Separator(tiny_model(), SeparationSettings(precision="fp32"))

    def variants(choice: str, separator: Separator) -> list[str]:
        return [detector.config.variant for detector in choose_detectors(choice, separator)]

    assert variants("auto", bundled) == ["mixture-only", "with-stem"]
    assert variants("auto", tiny) == ["mixture-only"]
    assert "another separation model" not in caplog.text
    assert variants("mixture-only", bundled) == ["mixture-only"]
    assert variants("level", bundled) == []
    assert variants("with-stem", tiny) == ["with-stem"]
    assert "another separation model" in caplog.text


def test_both_detectors_stream_each_vocal_block_beside_its_own_mixture(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    mixture = (0.1 * rng.standard_normal((2, 4 * SAMPLE_RATE + 77))).astype(np.float32)
    song = tmp_path / "song.wav"
    sf.write(song, mixture.T, SAMPLE_RATE, subtype="FLOAT")
    separator = Separator(tiny_model(), SeparationSettings(chunk_seconds=0.5, precision="fp32"))
    targets = {"vocals": tmp_path / "v.wav", "accompaniment": tmp_path / "a.wav"}
    result = separate_file(song, separator, targets, SongSettings(clean_up=None, voice_detector="both"))
    assert result.voice_detector == "both"
    vocals = separator.separate(mixture)["vocals"]
    expected = detect_voice(mixture, SAMPLE_RATE, vocals, [load_detector(variant=v) for v in ("mixture-only", "with-stem")])
    np.testing.assert_allclose(result.activity.voice_probability, expected.voice_probability, atol=1e-5)
    assert result.activity.segments == expected.segments
