"""Weights in and out: the official .ckpt read safely, our Hub format, the Hub cache, the converter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from model.bsmamba2 import BSMamba2
from conftest import TINY_CONFIG
from model.weights.checkpoint import (
    config_from_hparams,
    infer_config,
    load_official_checkpoint,
    official_state_dict,
    read_lightning_checkpoint,
)
from model.weights.convert import main as convert_main
from model.weights.pretrained import load_model
from utils.errors import CheckpointError



def tiny_model(seed: int = 0) -> BSMamba2:
    torch.manual_seed(seed)
    return BSMamba2(TINY_CONFIG).eval()


def outputs_equal(a: BSMamba2, b: BSMamba2) -> bool:
    wave = torch.randn(1, 2, 4410, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        return torch.equal(a.separate_waveform(wave), b.separate_waveform(wave))


def test_official_checkpoint_loads_strictly_with_its_hparams(official_fixture):
    model, info = load_official_checkpoint(official_fixture / "weights" / "last.ckpt")
    assert model.config.dim == 128 and model.config.depth == 2 and model.config.stems == ("vocals",)
    assert len(model.state_dict()) == 515
    assert info["lightning_version"] == "2.4.0" and len(info["sha256"]) == 64
    assert info["config_source"].endswith("hparams.yaml")


def test_official_key_rule_drops_featurizer_windows(official_fixture):
    checkpoint = read_lightning_checkpoint(official_fixture / "weights" / "last.ckpt")
    assert not any("window" in key or key.startswith("model.") for key in checkpoint.state_dict)
    assert official_state_dict({"model.layers.0.x": 1, "featurizer.window": 2}) == {"layers.0.x": 1}


def test_config_inferred_from_shapes_equals_hparams(official_fixture):
    checkpoint = read_lightning_checkpoint(official_fixture / "weights" / "last.ckpt")
    assert infer_config(checkpoint.state_dict) == config_from_hparams(official_fixture / "tb_logs" / "hparams.yaml")


def _write_lightning_ckpt(path: Path, state_dict: dict, **extra) -> Path:
    torch.save({"state_dict": {f"model.{k}": v for k, v in state_dict.items()}, "epoch": 3, **extra}, path)
    return path


def test_checkpoint_without_hparams_uses_tensor_shapes(tmp_path):
    model = tiny_model()
    ckpt = _write_lightning_ckpt(tmp_path / "last.ckpt", model.state_dict())
    loaded, info = load_official_checkpoint(ckpt)
    assert loaded.config == TINY_CONFIG and info["config_source"] == "inferred from tensor shapes"
    assert outputs_equal(model, loaded)


def test_ema_weights_come_from_the_optimizer_state(tmp_path):
    raw, ema = tiny_model(0), tiny_model(1)
    ckpt = _write_lightning_ckpt(
        tmp_path / "last.ckpt", raw.state_dict(), optimizer_states=[{"ema": tuple(p.detach() for p in ema.parameters())}]
    )
    assert outputs_equal(load_official_checkpoint(ckpt, use_ema=True)[0], ema)
    assert outputs_equal(load_official_checkpoint(ckpt)[0], raw)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_malicious_pickle_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Exploit()}, path)
    with pytest.raises(CheckpointError, match="os.system|posix.system"):
        read_lightning_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_non_checkpoint_files_get_a_clear_error(tmp_path):
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        read_lightning_checkpoint(text)
    plain = tmp_path / "plain.ckpt"
    torch.save([1, 2, 3], plain)
    with pytest.raises(CheckpointError, match="Lightning"):
        read_lightning_checkpoint(plain)


def test_other_module_types_are_refused(tmp_path):
    hparams = tmp_path / "hparams.yaml"
    hparams.write_text("model: {dim: 16, depth: 1, module_type: transformer}\n")
    with pytest.raises(CheckpointError, match="transformer"):
        config_from_hparams(hparams)


def test_hub_format_round_trip(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "m")
    assert {"config.json", "model.safetensors"} <= {p.name for p in (tmp_path / "m").iterdir()}
    loaded = BSMamba2.from_pretrained(tmp_path / "m")
    assert loaded.config == TINY_CONFIG and outputs_equal(model, loaded.eval())


def test_loading_is_strict(tmp_path):
    tiny_model().save_pretrained(tmp_path / "m")
    bigger = {**TINY_CONFIG.to_dict(), "dim": 32}
    (tmp_path / "m" / "config.json").write_text(__import__("json").dumps(bigger))
    with pytest.raises(CheckpointError, match="do not match"):
        load_model(tmp_path / "m")


def test_from_pretrained_reads_an_offline_hub_cache(tmp_path, monkeypatch):
    """A repo id resolves through the local HF cache with HF_HUB_OFFLINE=1: nothing is fetched."""
    model = tiny_model()
    snapshot = tmp_path / "hub" / "models--someone--bsmamba2-tiny" / "snapshots" / ("a" * 40)
    model.save_pretrained(snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    loaded = BSMamba2.from_pretrained("someone/bsmamba2-tiny", cache_dir=tmp_path / "hub")
    assert outputs_equal(model, loaded.eval())
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    assert load_model("someone/bsmamba2-tiny").kind == "Hugging Face Hub"


def test_load_model_routes_and_explains_failures(tmp_path, monkeypatch):
    tiny_model().save_pretrained(tmp_path / "folder")
    assert load_model(tmp_path / "folder").kind == "local folder"
    monkeypatch.setenv("BSMAMBA2_CHECKPOINT", str(tmp_path / "folder"))
    assert load_model().source == str(tmp_path / "folder")
    ckpt = _write_lightning_ckpt(tmp_path / "x.ckpt", tiny_model().state_dict())
    assert load_model(ckpt).kind == "official checkpoint"
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointError, match="Could not load"):
        load_model("nobody/no-such-model")


def test_convert_cli_writes_a_loadable_hub_folder_with_a_card(tmp_path):
    model = tiny_model()
    ckpt = _write_lightning_ckpt(tmp_path / "weights.ckpt", model.state_dict())
    assert convert_main([str(ckpt), str(tmp_path / "out")]) == 0
    card = (tmp_path / "out" / "README.md").read_text()
    assert "weights.ckpt" in card and "sha256" in card
    loaded = load_model(tmp_path / "out")
    assert outputs_equal(model, loaded.model) and "official BSMamba2 weights" in loaded.describe()
    assert convert_main([str(tmp_path / "missing.ckpt"), str(tmp_path / "out2")]) == 1


def test_bundled_demo_model_loads_by_default_and_says_what_it_is(monkeypatch):
    monkeypatch.delenv("BSMAMBA2_CHECKPOINT", raising=False)
    loaded = load_model()
    assert loaded.kind == "bundled demo"
    assert "synthetic" in loaded.describe() and "not the paper's weights" in loaded.describe()
    assert (Path(loaded.source) / "README.md").is_file()  # its model card
