"""Seconds to separate one stereo song: BSMamba2 against HTDemucs and BS-RoFormer, on one device, in one run.

    pip install -r requirements.txt -r requirements-bench.txt
    python scripts/benchmark.py --device cpu --seconds 30 --threads 2
    python scripts/benchmark.py --device cuda                      # 240 s song, fp16 autocast, + GPU checks

Every model has random weights (speed does not depend on them) and separates the same synthetic 44.1-kHz
stereo song, already decoded, end to end: chunking, STFT/iSTFT and stitching are timed, decoding is not.

- BSMamba2: the released config through our `Separator` (8-s chunks, no overlap, `--batch-size` a pass);
  on CUDA once with the PyTorch scan and once with mamba_ssm's Triton scan when it loads (docs/GPU.md); on a
  CPU once in float32 and once on the CPU fast path (`bf16`: bfloat16 weights, model/precision.py), the
  peers staying float32.
- HTDemucs: demucs' `HTDemucs` with its class defaults, the four sources and 7.8-s training segment of the
  released `htdemucs`, applied with demucs' own `apply_model` (its default 25 % overlap, one shift).
- BS-RoFormer: lucidrains' `BSRoformer` at the size of the community vocals configs (dim 384, depth 6, one
  time and one band transformer a layer, hop 441, plain residuals; `ROFORMER_CONFIG`), with the library's 62
  bands (the same as ours), applied like ours: 8-s chunks, no overlap, `--batch-size` chunks a pass.

Each model runs in its own subprocess, so its peak memory is its own: `torch.cuda.max_memory_allocated` on
CUDA, the process's peak RSS (imports included) on a CPU. One warm-up chunk runs first (Triton autotuning,
cuDNN and allocator warm-up). On CUDA the script also reports the SDR between BSMamba2's float32 output and
its autocast output (same weights, same song), and BSMamba2's peak memory for a 1-min and a 10-min song.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import math
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.stft import AUDIO_CHANNELS as CHANNELS  # noqa: E402
from model.stft import SAMPLE_RATE  # noqa: E402

DEFAULT_SECONDS = {"cuda": 240.0, "cpu": 30.0}
DEFAULT_PRECISION = {"cuda": "fp16", "cpu": "fp32"}
WARMUP_SECONDS = 8.0  # one chunk of ours and of BS-RoFormer, about one segment of HTDemucs
SEED = 0

MODELS = ("bsmamba2", "htdemucs", "bs-roformer")
BASELINE = "htdemucs"

HTDEMUCS_SOURCES = ("drums", "bass", "other", "vocals")
HTDEMUCS_SEGMENT = Fraction(39, 5)
"""7.8 s: the released htdemucs' training segment, the longest demucs lets it run on."""

ROFORMER_CONFIG = {
    "dim": 384,
    "depth": 6,
    "stereo": True,
    "num_stems": 1,
    "time_transformer_depth": 1,  # one time, one band transformer a layer, as in the paper (library: 2 and 2)
    "freq_transformer_depth": 1,
    "num_residual_streams": 1,  # plain residuals, as in the paper (library: 4 hyper-connection streams)
    "stft_hop_length": 441,  # 801 frames per 8 s, as ours and the community vocals configs (library: 512)
}
"""The community BS-RoFormer vocals configs' size (dim 384, depth 6, 8-s chunks); the library's 62 bands."""
CHUNK_SECONDS = 8.0  # ours (the official BSMamba2 inference), also used for BS-RoFormer

MEMORY_CHECK_SECONDS = (60.0, 600.0)
KIB, GIB = 1024, 1024**3


@dataclass
class Result:
    """One timed separation."""

    model: str
    variant: str  # e.g. the scan backend
    device: str
    precision: str
    audio_seconds: float
    seconds: float | None = None
    peak_memory_gib: float | None = None
    parameters_m: float | None = None
    error: str | None = None

    @property
    def realtime_factor(self) -> float | None:
        """Seconds of audio per second of compute (higher is faster)."""
        return self.audio_seconds / self.seconds if self.seconds else None


# --- the song --------------------------------------------------------------------------------


def synthetic_song(seconds: float, seed: int = SEED) -> np.ndarray:
    """A deterministic stereo mix `(2, samples)` float32 at 44.1 kHz: chords, a vibrato 'voice' and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    chords = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in (110.0, 164.8, 220.0, 277.2))
    voice = np.sin(2 * np.pi * 440.0 * t + 3.0 * np.sin(2 * np.pi * 5.0 * t)) * (
        np.sin(2 * np.pi * 0.25 * t) > 0
    )
    left = 0.1 * chords + 0.2 * voice + 0.02 * rng.standard_normal(t.size)
    right = 0.1 * chords + 0.2 * voice + 0.02 * rng.standard_normal(t.size)
    return np.stack([left, right]).astype(np.float32)


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """SDR (dB) of `estimate` against `reference`: the plain energy ratio, no projection."""
    error = np.sum((reference - estimate) ** 2)
    return math.inf if error == 0 else 10 * math.log10(np.sum(reference**2) / error)


# --- one model in this process ----------------------------------------------------------------------


def _autocast(device, precision: str) -> contextlib.AbstractContextManager:
    import torch

    from model.precision import FP32, PRECISIONS

    return contextlib.nullcontext() if precision == FP32 else torch.autocast(device.type, dtype=PRECISIONS[precision])


def _chunk_batches(num_samples: int, chunk: int, batch_size: int) -> Iterator[list[int]]:
    from model.inference.separator import chunk_starts

    starts = chunk_starts(num_samples, chunk, chunk)
    for first in range(0, len(starts), batch_size):
        yield starts[first : first + batch_size]


def bsmamba2_runner(device, precision: str, batch_size: int, backend: str) -> tuple[Callable, float]:
    """`separate(song) -> vocals` with the released config and random weights, and its parameter count (M)."""
    import torch

    from model.bsmamba2 import BSMamba2, BSMamba2Config
    from model.kernels import register_mamba_ssm_backend, use_scan_backend
    from model.inference.separator import SeparationSettings, Separator

    torch.manual_seed(SEED)
    model = BSMamba2(BSMamba2Config())
    if backend == "mamba_ssm" and not register_mamba_ssm_backend():
        raise RuntimeError("mamba_ssm's Triton scan did not load (docs/GPU.md shows how to see why)")
    separator = Separator(
        model, SeparationSettings(batch_size=batch_size, device=str(device), precision=precision)
    )
    use_scan_backend(separator.model, backend)
    return (lambda song: separator.separate(song)["vocals"]), _millions(model)


def htdemucs_runner(device, precision: str, batch_size: int, backend: str) -> tuple[Callable, float]:
    """HTDemucs as released (class defaults, 4 sources, 7.8-s segment) through demucs' `apply_model`."""
    import torch
    from demucs.apply import apply_model
    from demucs.htdemucs import HTDemucs

    del batch_size, backend  # apply_model runs one segment at a time; no scan
    torch.manual_seed(SEED)
    model = HTDemucs(sources=list(HTDEMUCS_SOURCES), segment=HTDEMUCS_SEGMENT).to(device).eval()
    vocals = HTDEMUCS_SOURCES.index("vocals")

    def separate(song: np.ndarray) -> np.ndarray:
        mix = torch.from_numpy(song)[None].to(device)
        with torch.inference_mode(), _autocast(device, precision):
            stems = apply_model(model, mix, device=device, progress=False)
        return stems[0, vocals].float().cpu().numpy()

    return separate, _millions(model)


def bs_roformer_runner(device, precision: str, batch_size: int, backend: str) -> tuple[Callable, float]:
    """BS-RoFormer (`ROFORMER_CONFIG`) on 8-s chunks without overlap, like ours."""
    import torch

    BSRoformer = _bs_roformer_class()
    del backend
    torch.manual_seed(SEED)
    model = BSRoformer(**ROFORMER_CONFIG).to(device).eval()
    chunk = round(CHUNK_SECONDS * SAMPLE_RATE)

    def separate(song: np.ndarray) -> np.ndarray:
        vocals = np.zeros_like(song)
        with torch.inference_mode():
            for starts in _chunk_batches(song.shape[1], chunk, batch_size):
                batch = torch.zeros(len(starts), CHANNELS, chunk)
                for row, start in enumerate(starts):
                    piece = song[:, start : start + chunk]
                    batch[row, :, : piece.shape[1]] = torch.from_numpy(piece)
                with _autocast(device, precision):
                    out = model(batch.to(device)).float().cpu().numpy()  # (batch, channels, ≤ chunk)
                for start, wave in zip(starts, out, strict=True):
                    end = min(start + wave.shape[-1], song.shape[1])
                    vocals[:, start:end] = wave[:, : end - start]
        return vocals

    return separate, _millions(model)


def _bs_roformer_class() -> type:
    """`bs_roformer.bs_roformer.BSRoformer`, imported without the package `__init__`.

    That `__init__` also imports the mel-band variant, which needs librosa (and so numba and llvmlite, 100 MB
    of wheels to carry to a GPU machine without a registry); `BSRoformer` itself never uses it.
    """
    spec = importlib.util.find_spec("bs_roformer")
    if spec is None:
        raise ImportError("bs-roformer is not installed: pip install --no-deps -r requirements-bench.txt")
    sys.modules.setdefault("bs_roformer", importlib.util.module_from_spec(spec))  # created, not executed
    return importlib.import_module("bs_roformer.bs_roformer").BSRoformer


RUNNERS = {"bsmamba2": bsmamba2_runner, "htdemucs": htdemucs_runner, "bs-roformer": bs_roformer_runner}


def _millions(model) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def _synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device) -> float:
    """Peak CUDA memory allocated since the last reset, or this process's peak RSS on a CPU."""
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / GIB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KIB / GIB  # Linux reports KiB


def time_model(args: argparse.Namespace) -> Result:
    """Warm up on one chunk, then time the whole song (in this process)."""
    import torch

    device = torch.device(args.device)
    result = Result(
        args.worker,
        args.backend if args.worker == "bsmamba2" else "",
        args.device,
        args.precision,
        args.seconds,
    )
    separate, result.parameters_m = RUNNERS[args.worker](
        device, args.precision, args.batch_size, args.backend
    )
    separate(synthetic_song(WARMUP_SECONDS, seed=SEED + 1))
    song = synthetic_song(args.seconds)
    _reset_peak(device)
    start = time.perf_counter()
    separate(song)
    _synchronize(device)
    result.seconds = time.perf_counter() - start
    result.peak_memory_gib = _peak_gib(device)
    return result


def autocast_sdr(args: argparse.Namespace) -> dict:
    """SDR (dB) of BSMamba2's autocast vocals against its float32 vocals: same weights, same song."""
    import torch

    device = torch.device(args.device)
    song = synthetic_song(args.seconds)
    fp32, _ = bsmamba2_runner(device, "fp32", args.batch_size, args.backend)
    reference = fp32(song)
    low, _ = bsmamba2_runner(device, args.precision, args.batch_size, args.backend)
    return {
        "check": "autocast_sdr",
        "backend": args.backend,
        "precision": args.precision,
        "sdr_db": sdr(reference, low(song)),
    }


def memory_by_length(args: argparse.Namespace) -> dict:
    """BSMamba2's peak CUDA memory (GiB) per song length: bounded by the batch, not by the song."""
    import torch

    device = torch.device(args.device)
    separate, _ = bsmamba2_runner(device, args.precision, args.batch_size, args.backend)
    separate(synthetic_song(WARMUP_SECONDS))
    peaks = {}
    for seconds in MEMORY_CHECK_SECONDS:
        song = synthetic_song(seconds)
        _reset_peak(device)
        separate(song)
        peaks[f"{seconds:g}s"] = _peak_gib(device)
    return {
        "check": "memory_by_length",
        "backend": args.backend,
        "precision": args.precision,
        "peak_gib": peaks,
    }


CHECKS = {"autocast_sdr": autocast_sdr, "memory_by_length": memory_by_length}


# --- the driver --------------------------------------------------------------------------------


def run_worker(args: argparse.Namespace, extra: list[str], precision: str | None = None) -> dict:
    """Run this script on one job in a fresh interpreter (in `precision`, default the run's); its last stdout
    line is the JSON result."""
    command = [sys.executable, str(Path(__file__).resolve()), *extra, *_common_flags(args, precision)]
    completed = subprocess.run(command, check=False, capture_output=True, text=True)
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        tail = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": tail[:200]}
    return json.loads(lines[-1])


def _common_flags(args: argparse.Namespace, precision: str | None = None) -> list[str]:
    flags = [
        "--device",
        args.device,
        "--seconds",
        str(args.seconds),
        "--precision",
        precision or args.precision,
        "--batch-size",
        str(args.batch_size),
    ]
    return flags + (["--threads", str(args.threads)] if args.threads else [])


def benchmark(args: argparse.Namespace) -> list[Result]:
    jobs = []
    for name in args.models:
        if name == "bsmamba2":
            jobs += [(name, backend, precision) for backend, precision in _bsmamba2_jobs(args.device, args.precision)]
        else:
            jobs.append((name, "", args.precision))
    results = []
    for name, backend, precision in jobs:
        print(f"timing {name} {backend} {precision} ...", file=sys.stderr, flush=True)
        raw = run_worker(args, ["--worker", name] + (["--backend", backend] if backend else []), precision)
        if "error" in raw and "model" not in raw:
            results.append(
                Result(name, backend, args.device, precision, args.seconds, error=raw["error"])
            )
        else:
            results.append(Result(**raw))
    return results


def _bsmamba2_jobs(device: str, precision: str) -> list[tuple[str, str]]:
    """(scan backend, precision) of each BSMamba2 run: both scans on CUDA (an error row when mamba_ssm does
    not load); on a CPU the PyTorch scan in float32 and on the bf16 fast path."""
    if device == "cuda":
        return [("torch", precision), ("mamba_ssm", precision)]
    return [("torch", "fp32"), ("torch", "bf16")]


def format_table(results: list[Result]) -> str:
    baseline = next((r for r in results if r.model == BASELINE and r.seconds), None)
    header = (
        "| model | variant | device | precision | params (M) | seconds | × real time | peak memory (GiB) "
        f"| time vs {BASELINE} |"
    )
    rows = [header, "|" + " --- |" * 9]
    for r in results:
        if r.error:
            rows.append(
                f"| {r.model} | {r.variant} | {r.device} | {r.precision} | | failed: {r.error} | | | |"
            )
            continue
        ratio = f"{r.seconds / baseline.seconds:.2f}×" if baseline else "n/a"
        rows.append(
            f"| {r.model} | {r.variant} | {r.device} | {r.precision} | {r.parameters_m:.1f} | "
            f"{r.seconds:.1f} | {r.realtime_factor:.2f} | {r.peak_memory_gib:.2f} | {ratio} |"
        )
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--seconds", type=float, help="song length (default: 240 on CUDA, 30 on a CPU)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument(
        "--precision",
        choices=("fp32", "fp16", "bf16"),
        help="autocast dtype on CUDA (default: fp16 on CUDA, fp32 on a CPU)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=4, help="8-s chunks per pass (BSMamba2, BS-RoFormer)"
    )
    parser.add_argument("--json", type=Path, help="also write every result here")
    parser.add_argument("--worker", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="torch", help=argparse.SUPPRESS)
    parser.add_argument("--check", choices=("autocast_sdr", "memory_by_length"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.seconds = args.seconds or DEFAULT_SECONDS[args.device]
    args.precision = args.precision or DEFAULT_PRECISION[args.device]
    if args.device == "cpu" and args.precision != "fp32" and args.worker != "bsmamba2":
        parser.error("fp16/bf16 autocast is only measured on CUDA; on a CPU the peers run fp32 and BSMamba2 "
                     "runs both fp32 and its bf16 fast path")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker or args.check:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        if args.check:
            print(json.dumps(CHECKS[args.check](args)))
        else:
            print(json.dumps(asdict(time_model(args))))
        return

    results = benchmark(args)
    print(
        f"\n{args.seconds:g}-s stereo song, device {args.device}, threads {args.threads or 'default'}, "
        f"batch {args.batch_size}\n"
    )
    print(format_table(results))
    checks = []
    if args.device == "cuda" and "bsmamba2" in args.models:
        for backend, _ in _bsmamba2_jobs(args.device, args.precision):
            for check in CHECKS:
                print(f"checking {check} ({backend}) ...", file=sys.stderr, flush=True)
                job = {"check": check, "backend": backend}
                checks.append(job | run_worker(args, ["--check", check, "--backend", backend]))
        print()
        for check in checks:
            print(json.dumps(check))
    if args.json:
        args.json.write_text(
            json.dumps({"results": [asdict(r) for r in results], "checks": checks}, indent=2)
        )


if __name__ == "__main__":
    main()
