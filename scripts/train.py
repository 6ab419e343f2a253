"""Train BSMamba2 with the official recipe (official-model.md §8) on MUSDB18-HQ or on generated songs.

    # the paper's model on MUSDB18-HQ (a GPU; official: 2 GPUs x batch 5 x accumulation 6)
    python scripts/train.py --train /data/musdb18hq/train --valid /data/musdb18hq/valid --run runs/bsmamba2
    # the bundled demo model: a small config on generated songs, on the CPU
    python -m utils.synth data/train --count 120 --backend fluidsynth
    python scripts/train.py --train data/train --valid data/valid --run runs/demo --preset demo --segment-seconds 3

    # the bundled demo model as shipped: fine-tuned from the previous one, aimed at sparse vocals and real backings
    SYNTH_RECORDINGS_ROOT=data/debian/root/usr/share python scripts/train.py --train data/v2/train \
        --valid data/v2/valid --run runs/v2 --init checkpoints/bsmamba2-demo --segment-seconds 2 --batch-size 4 \
        --accumulate 1 --lr 1e-3 --ema-decay 0.99 --aligned-prob 0.3 --backing-prob 0.25

Recipe: random remixes of salient segments (10 % vocal-free), 10·L1(time) + 5-resolution complex STFT L1,
AdamW(lr 5e-4, weight decay 0.01), no scheduler, gradient-norm clip 3, EMA 0.999 of the weights; the official
runs under bf16 autocast, and so does this one on CUDA and on CPUs with bf16 hardware (`--precision auto`;
`--precision fp32` for small configs, which measured faster in float32 on a CPU without AMX:
scripts/bench_train.py). Every `--valid-every` optimizer steps it logs the validation uSDR of the raw and EMA
weights to
`<run>/log.jsonl` and saves `<run>/last.pt` (resumable: run the same command again, or with a lower `--lr`
to go on at that rate) and the EMA weights in
our Hub format in `<run>/ema/` (the best by validation uSDR in `<run>/best/`). `--init` starts from a model in
our Hub format (its config replaces `--preset`); `--aligned-prob` and `--backing-prob` turn on the departures
from the official remixing described in `utils.remix` (real backings from `utils.synth.recorded`'s training split).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.bsmamba2 import PRESETS, BSMamba2  # noqa: E402
from model.kernels import best_scan_backend, use_scan_backend  # noqa: E402
from model.loss import separation_loss  # noqa: E402
from model.precision import TRAINING_PRECISIONS, resolve_training_precision, training_autocast  # noqa: E402
from model.stft import SAMPLE_RATE  # noqa: E402
from model.weights.pretrained import KIND_SYNTHETIC  # noqa: E402
from utils.metrics import usdr  # noqa: E402
from utils.remix import RandomRemixer, aligned_examples, find_tracks  # noqa: E402
from utils.synth.recorded import find_backings, read_backing  # noqa: E402

log = logging.getLogger("train")

LEARNING_RATE = 5e-4
WEIGHT_DECAY = 0.01  # AdamW's default, which the official config keeps
GRAD_CLIP = 3.0
EMA_DECAY = 0.999
# provenance.json "kind": what the app tells the user about the weights (model.weights.pretrained reads it).
KIND_TRAINED = "trained"
GENERATOR_NAME = "utils.synth"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True, help="folder of tracks in MUSDB18-HQ layout")
    parser.add_argument("--valid", type=Path, required=True, help="folder of validation tracks")
    parser.add_argument("--run", type=Path, required=True, help="output folder (resumes if it has last.pt)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="released")
    parser.add_argument("--init", type=Path, default=None, help="start from this Hub-format model (not on resume)")
    parser.add_argument("--aligned-prob", type=float, default=0.0, help="share of unremixed segments from any start")
    parser.add_argument("--backing-prob", type=float, default=0.0, help="share of real instrumental accompaniments")
    parser.add_argument("--segment-seconds", type=float, default=8.0)
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--accumulate", type=int, default=6)
    parser.add_argument("--steps", type=int, default=100_000, help="optimizer steps in total")
    parser.add_argument("--valid-every", type=int, default=200)
    parser.add_argument("--valid-examples", type=int, default=24)
    parser.add_argument("--lr", type=float, default=LEARNING_RATE)
    parser.add_argument("--ema-decay", type=float, default=EMA_DECAY, help="0.999 official; lower for short runs")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    parser.add_argument("--precision", choices=TRAINING_PRECISIONS, default="auto",
                        help="forward under bf16 autocast (bf16) or not (fp32); auto: bf16 on CUDA and on CPUs "
                        "with bf16 hardware. Small configs can train faster in fp32: scripts/bench_train.py")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop (and save) after this long")
    return parser.parse_args(argv)


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    accumulate: int,
    device: torch.device,
    precision: str,
) -> tuple[float, float]:
    """One optimizer step of the recipe over `accumulate` (mixture, target) micro-batches, their gradients
    summed: the official loss, gradient-norm clip, AdamW. Returns the mean loss and the gradient norm."""
    losses = []
    for mixture, target in micro_batches:
        with training_autocast(device, precision):
            estimate = model.separate_waveform(mixture)
        loss = separation_loss(estimate.float(), target) / accumulate
        loss.backward()
        losses.append(loss.item() * accumulate)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(np.mean(losses)), float(grad_norm)


@torch.inference_mode()
def validate(model: torch.nn.Module, mixtures: np.ndarray, vocals: np.ndarray, device: torch.device) -> float:
    """Mean uSDR over the validation examples (the official `val/usdr`)."""
    model.eval()
    scores = []
    for mixture, target in zip(mixtures, vocals):
        # bf16 on CUDA as the official validation; float32 on a CPU, so that runs stay comparable.
        with training_autocast(device, "bf16" if device.type == "cuda" else "fp32"):
            estimate = model.separate_waveform(torch.from_numpy(mixture[None]).to(device))
        scores.append(usdr(target[0], estimate[0, 0].float().cpu().numpy()))
    model.train()
    return float(np.mean(scores))


def data_kind(root: Path) -> str:
    """``KIND_SYNTHETIC`` when every training track was written by the song generator, else ``KIND_TRAINED``."""
    for meta in (track / "meta.json" for track in find_tracks(root)):
        if not meta.is_file() or json.loads(meta.read_text()).get("generator") != GENERATOR_NAME:
            return KIND_TRAINED
    return KIND_SYNTHETIC


def real_backings() -> list[np.ndarray]:
    """The training split of the real instrumental recordings, `(channels, samples)` each, at the model's rate."""
    backings = []
    for backing in find_backings("train"):
        audio, rate = read_backing(backing)
        if rate != SAMPLE_RATE:
            raise ValueError(f"{backing.name} is at {rate} Hz, not {SAMPLE_RATE}")
        backings.append(audio)
        log.info("real backing %s: %.0f s (%s)", backing.name, audio.shape[-1] / rate, backing.licence)
    if not backings:
        raise FileNotFoundError("--backing-prob needs Debian's fretsonfire-songs-muldjord (see utils.synth.recorded)")
    return backings


def save_hub_format(model: BSMamba2, folder: Path, provenance: dict) -> None:
    model.save_pretrained(folder)
    (folder / "provenance.json").write_text(json.dumps(provenance, indent=2))


def train(args: argparse.Namespace) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    segment = int(round(args.segment_seconds * SAMPLE_RATE))
    remixer = RandomRemixer(
        args.train,
        segment,
        aligned_probability=args.aligned_prob,
        backings=real_backings() if args.backing_prob else (),
        backing_probability=args.backing_prob,
    )
    valid_mix, valid_voc = aligned_examples(args.valid, segment, args.valid_examples, seed=args.seed)

    kind = data_kind(args.train)
    precision = resolve_training_precision(args.precision, device)
    log.info("training in %s on %s", precision, device)
    model = BSMamba2.from_pretrained(str(args.init)) if args.init else BSMamba2(PRESETS[args.preset])
    config = model.config
    model = model.to(device).train()
    use_scan_backend(model, best_scan_backend(device))  # mamba_ssm's Triton scan on CUDA: far less memory
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema_decay), use_buffers=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=WEIGHT_DECAY)
    args.run.mkdir(parents=True, exist_ok=True)
    state_path = args.run / "last.pt"
    step, best, seconds_before = 0, -float("inf"), 0.0
    if state_path.is_file():
        state = torch.load(state_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:  # `--lr` holds on resume too: a run can go on at a lower rate
            group["lr"] = args.lr
        step, best, seconds_before = state["step"], state["best"], state["seconds"]
        log.info("resumed at step %d (lr %g)", step, args.lr)

    (args.run / "args.json").write_text(json.dumps({k: str(v) for k, v in vars(args).items()}, indent=2))
    started = time.monotonic()
    bar = tqdm(total=args.steps, initial=step, desc="train", unit="step")
    with (args.run / "log.jsonl").open("a") as log_file:
        while step < args.steps:
            # Each micro-batch has its own seeded generator: resuming replays the same examples.
            micro_batches = (
                tuple(torch.from_numpy(a).to(device)
                      for a in remixer.batch(np.random.default_rng([args.seed, step, micro]), args.batch_size))
                for micro in range(args.accumulate)
            )
            loss, grad_norm = train_step(model, optimizer, micro_batches, args.accumulate, device, precision)
            ema.update_parameters(model)
            step += 1
            bar.update()
            bar.set_postfix(loss=f"{loss:.3f}")
            seconds = seconds_before + time.monotonic() - started
            record = {"step": step, "loss": loss, "grad_norm": grad_norm, "seconds": round(seconds, 1),
                      "lr": optimizer.param_groups[0]["lr"]}
            out_of_time = args.max_minutes is not None and time.monotonic() - started > args.max_minutes * 60
            if step % args.valid_every == 0 or step == args.steps or out_of_time:
                record["valid_usdr"] = validate(model, valid_mix, valid_voc, device)
                record["valid_usdr_ema"] = validate(ema.module, valid_mix, valid_voc, device)
                provenance = {
                    "kind": kind,
                    "summary": "Trained by this project on synthetic songs; not the paper's weights."
                    if kind == KIND_SYNTHETIC
                    else "Trained by this project with scripts/train.py; not the paper's weights.",
                    "recipe": f"official BSMamba2 recipe (official-model.md §8); lr {args.lr}, EMA {args.ema_decay}, "
                    f"batch {args.batch_size} x {args.accumulate}, aligned {args.aligned_prob}, "
                    f"real backings {args.backing_prob}; EMA weights"
                    + (f"; initialised from {args.init}" if args.init else ""),
                    "train_data": str(args.train),
                    "steps": step,
                    "examples_seen": step * args.accumulate * args.batch_size,
                    "segment_seconds": args.segment_seconds,
                    "train_seconds": round(seconds),
                    "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
                    "precision": precision,
                    "valid_usdr_ema": record["valid_usdr_ema"],
                    "config": asdict(config),
                }
                save_hub_format(ema.module, args.run / "ema", provenance)
                if record["valid_usdr_ema"] > best:
                    best = record["valid_usdr_ema"]
                    save_hub_format(ema.module, args.run / "best", provenance)
                torch.save(
                    {"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                     "step": step, "best": best, "seconds": seconds},
                    state_path,
                )
                tqdm.write(json.dumps(record))
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
            if out_of_time:
                break
    bar.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    train(parse_args())


if __name__ == "__main__":
    main()
