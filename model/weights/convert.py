"""Convert an official BSMamba2 Lightning checkpoint to our Hub format.

    python -m model.weights.convert path/to/weights/epoch100.ckpt checkpoints/bsmamba2-official [--ema]

Writes `config.json`, `model.safetensors`, `provenance.json` and a model card (`README.md`) that says where
the weights came from. The output folder loads with `BSMamba2.from_pretrained(folder)`, `load_model(folder)`,
`python -m model.separate --checkpoint folder`, and can be pushed to the Hub as is.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from model.weights.checkpoint import load_official_checkpoint
from model.weights.pretrained import PROVENANCE_FILE
from utils.errors import CheckpointError

MODEL_CARD = """---
library_name: bsmamba2-space
license: mit
tags: [audio, music-source-separation, vocals, bsmamba2, mamba2]
---
# BSMamba2 ({weights} weights), converted from the official checkpoint

Band-split, dual-path bidirectional Mamba2 vocal separator of *Mamba2 Meets Silence: Robust Vocal Source
Separation for Sparse Regions* (Kim & Choi, arXiv 2508.14556), converted without change from the official
PyTorch Lightning checkpoint of github.com/EuiYeonKim/BSMamba2.

| | |
| --- | --- |
| source file | `{source_file}` |
| sha256 | `{sha256}` |
| epoch / global step | {epoch} / {global_step} |
| Lightning version | {lightning_version} |
| weights | {weights_long} |
| config from | {config_source} |
| parameters | {parameters:,} |
| converted | {converted} |

Config: `{config}`.

The paper reports 11.03 dB cSDR on MUSDB18-HQ for the released weights (evaluated with fp16 autocast on 8-s
chunks without overlap). The conversion is checked by loading with `strict=True`; the network code reproduces
the official implementation's outputs on its parity fixture to ~1e-6 relative.
Use the original licence of the weights as published by their authors.
"""


def convert(checkpoint: Path, output: Path, *, use_ema: bool = False) -> Path:
    """Write the Hub-format folder for an official `.ckpt`; returns the folder."""
    model, info = load_official_checkpoint(checkpoint, use_ema=use_ema)
    output.mkdir(parents=True, exist_ok=True)
    parameters = sum(p.numel() for p in model.parameters())
    provenance = {
        **info,
        "summary": f"The official BSMamba2 weights ({info['weights']}), converted from {info['source_file']}.",
        "parameters": parameters,
        "converted": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (output / "README.md").write_text(
        MODEL_CARD.format(
            weights="EMA" if use_ema else "raw",
            weights_long=info["weights"],
            config=json.dumps(model.config.to_dict()),
            **{k: provenance.get(k) for k in ("source_file", "sha256", "epoch", "global_step", "lightning_version",
                                                "config_source", "parameters", "converted")},
        )
    )
    model.save_pretrained(output)
    (output / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2, default=str))
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="official Lightning .ckpt")
    parser.add_argument("output", type=Path, help="folder to write (config.json, model.safetensors, README.md)")
    parser.add_argument("--ema", action="store_true", help="take the EMA weights from the optimizer state")
    args = parser.parse_args(argv)
    try:
        folder = convert(args.checkpoint, args.output, use_ema=args.ema)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
