"""The official training recipe: salient-segment selection, remixing, the loss, a step that learns, evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from model.bsmamba2 import BSMamba2
from conftest import TINY_CONFIG
from model.loss import multi_resolution_stft_l1, round_trip, separation_loss
from utils.remix import RandomRemixer, aligned_examples, salient_starts
from utils.synth import SongConfig, generate_song, write_song

SR = 44100


@pytest.fixture(scope="module")
def song_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("songs")
    for seed in (1, 2, 3):
        write_song(generate_song(seed, SongConfig(duration_s=10.0, vocal_fraction=0.5, backend="numpy")), root / f"s{seed}")
    return root


def test_salient_windows_follow_the_official_rule():
    stem = np.zeros((2, 10 * SR), dtype=np.float32)
    stem[:, : 4 * SR] = 0.1 * np.random.default_rng(0).standard_normal((2, 4 * SR))  # 4 s of noise, then silence
    window = 2 * SR
    starts = salient_starts(stem, window)
    assert starts == [0, SR, 2 * SR]  # windows hop by half; only those mostly inside the loud part count
    quiet = np.full((2, 4 * SR), 5e-4, dtype=np.float32)  # below gamma = 1e-3 (-66 dBFS) everywhere
    assert salient_starts(quiet, window) == []


def test_every_channel_must_be_salient():
    stem = np.zeros((2, 4 * SR), dtype=np.float32)
    stem[0] = 0.1 * np.random.default_rng(0).standard_normal(4 * SR)
    assert salient_starts(stem, 2 * SR) == []


def test_a_perfectly_steady_level_is_not_salient():
    """An oddity of the official rule: equal piece levels are never strictly above their own quantile."""
    assert salient_starts(np.full((2, 2 * SR), 0.1, dtype=np.float32), 2 * SR) == []


def test_remixes_sum_scaled_stems(song_folder):
    remixer = RandomRemixer(song_folder, SR)
    mixture, vocals = remixer.batch(np.random.default_rng(0), 3)
    assert mixture.shape == (3, 2, SR) and vocals.shape == (3, 1, 2, SR)
    assert np.all(np.abs(vocals[:, 0]) <= np.abs(mixture) + 10) and mixture.dtype == np.float32
    again = remixer.batch(np.random.default_rng(0), 3)
    assert np.array_equal(again[0], mixture)  # a seeded generator replays the same examples


def test_validation_examples_are_real_mixtures(song_folder):
    mixtures, vocals = aligned_examples(song_folder, SR, count=2, seed=0)
    assert mixtures.shape == (2, 2, SR) and np.any(vocals)


def test_loss_is_zero_only_for_the_round_tripped_target():
    target = torch.randn(1, 1, 2, SR // 2) * 0.1
    assert separation_loss(round_trip(target), target).item() < 1e-4
    assert separation_loss(torch.zeros_like(target), target).item() > 0.1
    assert multi_resolution_stft_l1(target, target).item() == 0


def test_a_few_training_steps_lower_the_loss(song_folder):
    torch.manual_seed(0)
    model = BSMamba2(TINY_CONFIG).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    remixer = RandomRemixer(song_folder, SR // 2)
    mixture, target = (torch.from_numpy(a) for a in remixer.batch(np.random.default_rng(1), 2))
    losses = []
    for _ in range(6):
        loss = separation_loss(model.separate_waveform(mixture), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_train_script_runs_resumes_and_saves_hub_folders(song_folder, tmp_path):
    from scripts.train import PRESETS, parse_args, train

    PRESETS["tiny"] = TINY_CONFIG
    args = ["--train", str(song_folder), "--valid", str(song_folder), "--run", str(tmp_path / "run"),
            "--preset", "tiny", "--segment-seconds", "0.5", "--batch-size", "1", "--accumulate", "1",
            "--steps", "2", "--valid-every", "2", "--valid-examples", "2"]
    train(parse_args(args))
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and "valid_usdr_ema" in log[-1]
    assert BSMamba2.from_pretrained(tmp_path / "run" / "ema").config == TINY_CONFIG
    train(parse_args([*args[:-6], "--steps", "3", *args[-4:], "--lr", "1e-4"]))  # resumes from last.pt at step 2
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [(r["step"], r["lr"]) for r in log] == [(1, 5e-4), (2, 5e-4), (3, 1e-4)]  # the new rate holds


def test_evaluate_script_scores_model_and_baselines(tmp_path, capsys):
    from scripts.evaluate import main

    torch.manual_seed(0)
    BSMamba2(TINY_CONFIG).save_pretrained(tmp_path / "m")
    main(["--generated", "2", "--backend", "numpy", "--durations", "4", "6", "--checkpoint", str(tmp_path / "m"), "--json", str(tmp_path / "e.json")])
    result = json.loads((tmp_path / "e.json").read_text())
    assert set(result["summary"]) == {"model", "silence", "mixture x 0.5"}
    assert len(result["per_track"]["model"]) == 2
    assert result["summary"]["silence"]["usdr"]["mean"] == pytest.approx(0.0, abs=1e-6)
    assert "cSDR (median)" in capsys.readouterr().out


def test_aligned_examples_keep_one_songs_silences(song_folder):
    """With aligned_probability 1 every stem comes from the same song and start, vocal-free parts included."""
    remixer = RandomRemixer(song_folder, SR, aligned_probability=1.0)
    mixtures, vocals = remixer.batch(np.random.default_rng(3), 16)
    silent = [np.abs(v).max() == 0 for v in vocals[:, 0]]
    assert any(silent) and not all(silent)  # 10 s songs with the voice half the time: some windows miss it


def test_real_backings_replace_the_accompaniment_at_its_loudness(song_folder):
    backing = np.tile(np.sin(np.arange(3 * SR) / 10.0, dtype=np.float32), (2, 1))
    remixer = RandomRemixer(song_folder, SR, backings=[backing], backing_probability=1.0)
    mixture, vocals = remixer.example(np.random.default_rng(5))
    plain_mixture, plain_vocals = RandomRemixer(song_folder, SR).example(np.random.default_rng(5))
    accompaniment, plain = mixture - vocals, plain_mixture - plain_vocals
    assert np.array_equal(vocals, plain_vocals)  # the same draws before the backing's
    crest = np.abs(accompaniment).max() / np.sqrt(np.mean(accompaniment**2))
    assert crest == pytest.approx(np.sqrt(2), rel=1e-2)  # a pure sine: the synthetic parts are gone
    assert np.sqrt(np.mean(accompaniment**2)) == pytest.approx(np.sqrt(np.mean(plain**2)), rel=1e-3)


def test_backings_must_be_long_enough_for_a_segment(song_folder):
    with pytest.raises(ValueError):
        RandomRemixer(song_folder, SR, backings=[np.zeros((2, 100), dtype=np.float32)], backing_probability=0.5)
