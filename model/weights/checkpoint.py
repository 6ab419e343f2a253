"""Reading the official BSMamba2 Lightning checkpoint safely (official-model.md §4).

The released `.ckpt` is a PyTorch Lightning file whose `hyper_parameters` is a pickled omegaconf `DictConfig`,
so `torch.load(weights_only=True)` refuses it and `weights_only=False` would run arbitrary code from an
untrusted download. `read_lightning_checkpoint` unpickles it with an allow-list: the handful of globals such a
file holds, omegaconf's classes mapped to an inert stand-in (omegaconf is not needed), and a
`CheckpointError` naming anything else.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from torch import Tensor

from model.bsmamba2 import COMPLEX_PARTS, DEFAULT_FREQS_PER_BANDS, BSMamba2, BSMamba2Config
from model.stft import N_FFT
from utils.errors import CheckpointError
from utils.files import file_sha256

__all__ = [
    "OfficialCheckpoint",
    "read_lightning_checkpoint",
    "official_state_dict",
    "config_from_hparams",
    "infer_config",
    "load_official_checkpoint",
]


HPARAMS_RELATIVE_PATHS = ("tb_logs/hparams.yaml", "../tb_logs/hparams.yaml", "hparams.yaml")
"""Where `evaluate.py`/`inference.py` find the config: `<run>/tb_logs/hparams.yaml`, ckpt in `<run>/weights/`."""

MODEL_KEY_MARKER = "model"
MODEL_KEY_PREFIX = "model."
"""The official key rule (`load_pl_state_dict`): keep keys containing "model", delete every "model."."""

SUPPORTED_MODULE_TYPE = "mamba2"

_ALLOWED_GLOBALS: dict[tuple[str, str], object] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): collections.defaultdict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("typing", "Any"): typing.Any,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "set"): set,
    ("builtins", "int"): int,
    ("builtins", "float"): float,
    ("builtins", "str"): str,
    ("builtins", "bool"): bool,
}
"""Globals a Lightning checkpoint of this model may reference (official-model.md §4 lists those seen) and nothing that runs code."""

_OMEGACONF_CLASSES = {"DictConfig", "ListConfig", "ContainerMetadata", "Metadata", "AnyNode"}


class _InertConfigNode:
    """Stands in for an omegaconf class: unpickling fills its `__dict__` and nothing runs."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.args = args

    def __setstate__(self, state: object) -> None:
        self.__dict__["state"] = state


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        # Protocol-2 pickles (Lightning's) use Python 2 names, e.g. `__builtin__.long` for int.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        if module.split(".")[0] == "omegaconf" and name in _OMEGACONF_CLASSES:
            return _InertConfigNode
        raise CheckpointError(
            f"This checkpoint contains code we will not run ({module}.{name}). Only official BSMamba2 "
            "checkpoints (and files in this app's own format) can be loaded."
        )


class _RestrictedPickleModule:
    """A `pickle_module` for `torch.load` whose Unpickler admits only `_ALLOWED_GLOBALS`."""

    Unpickler = _RestrictedUnpickler
    __name__ = "restricted_pickle"

    @staticmethod
    def load(file: typing.IO[bytes], **kwargs: object) -> object:
        return _RestrictedUnpickler(file, **kwargs).load()

    @staticmethod
    def loads(data: bytes, **kwargs: object) -> object:
        return _RestrictedUnpickler(io.BytesIO(data), **kwargs).load()


@dataclass
class OfficialCheckpoint:
    """What we keep from an official `.ckpt`: the network weights, their optional EMA copy, and provenance."""

    state_dict: dict[str, Tensor]
    ema_weights: tuple[Tensor, ...] | None
    info: dict[str, object] = field(default_factory=dict)


def read_lightning_checkpoint(path: str | Path) -> OfficialCheckpoint:
    """Unpickle an official Lightning checkpoint with the allow-list and apply the official key rule."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint file not found: {path}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_RestrictedPickleModule)
    except CheckpointError:
        raise
    except Exception as error:  # a damaged or foreign file: say so instead of a traceback
        raise CheckpointError(f"{path.name} is not a readable PyTorch checkpoint ({error}).") from error
    if not isinstance(raw, dict) or not isinstance(raw.get("state_dict"), dict):
        raise CheckpointError(f"{path.name} is not a PyTorch Lightning checkpoint (no 'state_dict').")
    info = {
        "source_file": path.name,
        "sha256": file_sha256(path),
        "epoch": raw.get("epoch"),
        "global_step": raw.get("global_step"),
        "lightning_version": raw.get("pytorch-lightning_version"),
    }
    return OfficialCheckpoint(official_state_dict(raw["state_dict"]), _ema_weights(raw), info)


def official_state_dict(lightning_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """`load_pl_state_dict`'s rule: keep keys containing "model", then delete every "model."."""
    return {
        key.replace(MODEL_KEY_PREFIX, ""): value
        for key, value in lightning_state.items()
        if MODEL_KEY_MARKER in key
    }


def _ema_weights(raw: dict) -> tuple[Tensor, ...] | None:
    """The EMA copy in `optimizer_states[0]["ema"]` (parameters() order), when training state was kept."""
    states = raw.get("optimizer_states") or []
    ema = states[0].get("ema") if states and isinstance(states[0], dict) else None
    return tuple(ema) if ema else None


def find_hparams(checkpoint_path: Path) -> Path | None:
    """The run's `tb_logs/hparams.yaml` next to (or one level above) the checkpoint, if present."""
    for relative in HPARAMS_RELATIVE_PATHS:
        candidate = (checkpoint_path.parent / relative).resolve()
        if candidate.is_file():
            return candidate
    return None


def config_from_hparams(hparams_path: Path) -> BSMamba2Config:
    """Build our config from the official hydra config written by Lightning (`hparams.yaml`)."""
    try:
        hparams = yaml.safe_load(hparams_path.read_text())
        model_cfg = hparams["model"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise CheckpointError(f"Cannot read the model settings in {hparams_path}: {error}") from error
    module_type = model_cfg.get("module_type", SUPPORTED_MODULE_TYPE)
    if module_type != SUPPORTED_MODULE_TYPE:
        raise CheckpointError(
            f"This checkpoint is a '{module_type}' band-split model, not BSMamba2 ('mamba2'); it cannot be loaded here."
        )
    stems = tuple((hparams.get("train_dataset") or {}).get("target") or ("vocals",))
    return BSMamba2Config(
        dim=int(model_cfg["dim"]),
        depth=int(model_cfg["depth"]),
        stereo=bool(model_cfg.get("stereo", True)),
        num_stems=len(stems),
        mask_estimator_depth=int(model_cfg.get("mask_estimator_depth", 2)),
        freqs_per_bands=tuple(model_cfg.get("freqs_per_bands", DEFAULT_FREQS_PER_BANDS)),
        stems=stems,
    )


def infer_config(state_dict: dict[str, Tensor]) -> BSMamba2Config:
    """Recover the config from tensor shapes alone (for a `.ckpt` without its `hparams.yaml`).

    Mamba's ngroups and d_state only appear as their product; like the released model, ngroups is taken as 1.
    """
    try:
        dim = state_dict["final_norm.gamma"].shape[0]
        depth = 1 + max(int(m.group(1)) for k in state_dict if (m := re.match(r"layers\.(\d+)\.", k)))
        num_stems = 1 + max(int(m.group(1)) for k in state_dict if (m := re.match(r"mask_estimators\.(\d+)\.", k)))
        widths = [
            state_dict[f"band_split.to_features.{k}.0.gamma"].shape[0]
            for k in range(sum(1 for key in state_dict if key.endswith(".0.gamma") and "band_split" in key))
        ]
        mixer = "layers.0.0.forward_blocks.0.mixer."
        d_inner = state_dict[mixer + "norm.weight"].shape[0]
        nheads = state_dict[mixer + "A_log"].shape[0]
        conv_dim, _, d_conv = state_dict[mixer + "conv1d.weight"].shape
        mask_linears = sum(
            1 for key in state_dict if re.fullmatch(r"mask_estimators\.0\.to_freqs\.0\.0\.\d+\.weight", key)
        )
    except (KeyError, ValueError, IndexError) as error:
        raise CheckpointError(f"These weights do not look like a BSMamba2 model (missing {error}).") from error
    channels = sum(widths) // (COMPLEX_PARTS * (N_FFT // 2 + 1))  # Σ widths = 2 · channels · bins
    if channels not in (1, 2):
        raise CheckpointError(f"These weights cover {sum(widths)} band features, which fits no STFT layout we know.")
    return BSMamba2Config(
        dim=dim,
        depth=depth,
        stereo=channels == 2,
        num_stems=num_stems,
        stems=("vocals",) if num_stems == 1 else tuple(f"stem{i}" for i in range(num_stems)),
        mask_estimator_depth=mask_linears,
        freqs_per_bands=tuple(w // (2 * channels) for w in widths),
        mamba_expand=d_inner // dim,
        mamba_headdim=d_inner // nheads,
        mamba_d_state=(conv_dim - d_inner) // 2,
        mamba_d_conv=d_conv,
    )



def load_official_checkpoint(
    path: str | Path, *, use_ema: bool = False, config: BSMamba2Config | None = None
) -> tuple[BSMamba2, dict[str, object]]:
    """An official `.ckpt` as a ready `BSMamba2` (eval mode, CPU) plus its provenance.

    The config comes from `config`, else the run's `tb_logs/hparams.yaml`, else the tensor shapes. Weights load
    with `strict=True`. `use_ema` takes the EMA copy instead of the raw weights the official evaluation used.
    """
    path = Path(path)
    checkpoint = read_lightning_checkpoint(path)
    hparams = find_hparams(path)
    if config is not None:
        config_source = "given by the caller"
    elif hparams is not None:
        config, config_source = config_from_hparams(hparams), str(hparams)
    else:
        config, config_source = infer_config(checkpoint.state_dict), "inferred from tensor shapes"
    model = BSMamba2(config)
    state = checkpoint.state_dict
    if use_ema:
        if checkpoint.ema_weights is None:
            raise CheckpointError(f"{path.name} holds no EMA weights (no optimizer state was saved).")
        names = [name for name, _ in model.named_parameters()]
        if len(names) != len(checkpoint.ema_weights):
            raise CheckpointError(f"{path.name}: the EMA copy has {len(checkpoint.ema_weights)} tensors, expected {len(names)}.")
        state = dict(zip(names, checkpoint.ema_weights))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path.name} does not match the BSMamba2 architecture: {error}") from error
    info = {
        **checkpoint.info,
        "format": "official Lightning checkpoint",
        "weights": "EMA" if use_ema else "raw (as the official evaluate.py)",
        "config_source": config_source,
    }
    return model.eval(), info
