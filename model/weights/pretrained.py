"""Where weights come from: the bundled demo model, a local folder, a Hub repo id, or an official `.ckpt`.

    load_model()                          # $BSMAMBA2_CHECKPOINT, else the bundled demo model
    load_model("checkpoints/bsmamba2-demo")   # a folder in our Hub format (config.json + model.safetensors)
    load_model("user/bsmamba2-vocals")    # a Hub repo id (uses the local HF cache; HF_HUB_OFFLINE=1 works)
    load_model("epoch100.ckpt")           # an official Lightning checkpoint, read safely

Every route ends in a `LoadedModel`: the network in eval mode and a short description of its provenance that
the app and the CLI show to the user.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

from model.bsmamba2 import BSMamba2
from model.weights.checkpoint import load_official_checkpoint
from utils.errors import CheckpointError

__all__ = ["LoadedModel", "load_model", "DEFAULT_CHECKPOINT", "CHECKPOINT_ENV"]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CHECKPOINT = REPO_ROOT / "checkpoints" / "bsmamba2-demo"
CHECKPOINT_ENV = "BSMAMBA2_CHECKPOINT"
PROVENANCE_FILE = "provenance.json"
"""Optional file beside a Hub-format model that says what the weights are (written by training and conversion)."""
KIND_SYNTHETIC = "demo-synthetic"
"""`provenance.json`'s `kind` for weights trained on the project's generated songs only (scripts/train.py)."""


@dataclass
class LoadedModel:
    """A ready network and what to tell the user about it."""

    model: BSMamba2
    source: str  # what was asked for: a path or a repo id (logs and cache keys; never shown on a page)
    kind: str  # "bundled demo", "local folder", "Hugging Face Hub", "official checkpoint"
    info: dict[str, object] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """What to call the weights in public: a repo id, a folder or file name, never a server path."""
        return self.source if self.kind == "Hugging Face Hub" else Path(self.source).name

    @property
    def trained_on_synthetic_data(self) -> bool:
        """Whether the provenance says the weights learnt from generated songs only (the bundled demo does)."""
        return self.info.get("kind") == KIND_SYNTHETIC

    def describe(self) -> str:
        """One or two sentences for a model panel."""
        params = sum(p.numel() for p in self.model.parameters())
        config = self.model.config
        text = f"{self.kind}: {self.name} — BSMamba2 dim {config.dim}, depth {config.depth}, {params / 1e6:.1f} M parameters."
        summary = self.info.get("summary")
        return f"{text} {summary}" if summary else text


def load_model(source: str | os.PathLike[str] | None = None) -> LoadedModel:
    """Load BSMamba2 weights from `source`, `$BSMAMBA2_CHECKPOINT`, or the bundled demo model, in that order.

    Raises `CheckpointError` with a readable message when nothing usable is found.
    """
    source = source or os.environ.get(CHECKPOINT_ENV) or DEFAULT_CHECKPOINT
    path = Path(source).expanduser()
    if path.suffix == ".ckpt":
        model, info = load_official_checkpoint(path)
        return LoadedModel(model, str(path), "official checkpoint", info)
    if path.is_dir():
        kind = "bundled demo" if path.resolve() == DEFAULT_CHECKPOINT.resolve() else "local folder"
        return LoadedModel(_from_pretrained(str(path)), str(path), kind, _provenance(path))
    if path == DEFAULT_CHECKPOINT:
        raise CheckpointError(
            "No model weights are bundled with this installation yet. Set BSMAMBA2_CHECKPOINT to a model folder, "
            "a Hugging Face repo id, or an official BSMamba2 .ckpt file."
        )
    if path.exists() or os.sep in str(source) and not _looks_like_repo_id(str(source)):
        raise CheckpointError(f"{source} is neither a model folder nor an official .ckpt file.")
    return LoadedModel(_from_pretrained(str(source)), str(source), "Hugging Face Hub")


def _from_pretrained(source: str) -> BSMamba2:
    try:
        return BSMamba2.from_pretrained(source).eval()
    except (LocalEntryNotFoundError, HfHubHTTPError, HFValidationError, FileNotFoundError, OSError) as error:
        raise CheckpointError(
            f"Could not load the model '{source}' (not found locally, and the Hub is unreachable or has no such repo)."
        ) from error
    except RuntimeError as error:  # strict load: keys or shapes differ
        raise CheckpointError(f"The weights in '{source}' do not match the BSMamba2 architecture: {error}") from error


def _provenance(folder: Path) -> dict[str, object]:
    path = folder / PROVENANCE_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        log.warning("ignoring unreadable %s", path)
        return {}


def _looks_like_repo_id(text: str) -> bool:
    """`owner/name`: exactly one slash, no path syntax."""
    return text.count("/") == 1 and not text.startswith((".", "/", "~"))
