"""Time BSMamba2 on an 8-s stereo chunk on the CPU in each precision, side by side in one run.

    python scripts/bench_model.py                      # released + bundled demo + fixture, fp32, bf16, bf16+compile
    python scripts/bench_model.py --preset released --precision fp32 --precision bf16 --runs 3 --profile

A precision with "+compile" runs the Mamba2 layers through TorchInductor (model.compile); its "first call"
column includes the compilation (shorter when Inductor's on-disk cache already holds the kernels).
Each (preset, precision) runs in its own subprocess so that its peak memory (max RSS) is its own. The input is
the first 8 s of a generated song (utils.synth, numpy backend); "released" has random weights (speed does not
depend on them), "demo" is checkpoints/bsmamba2-demo, "fixture" the official parity fixture's model and
waveform. Prints seconds of compute per second of audio (lower is better; < 1 is faster than real time), the
speed-up over the first precision, peak resident memory, and the agreement (SDR) of each output with the
first precision's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.bsmamba2 import PRESETS as CONFIGS  # noqa: E402
from model.bsmamba2 import BSMamba2  # noqa: E402
from model.inference.separator import CPU_BLOCK_ELEMENTS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHUNK_SECONDS = 8.0
SONG_SEED = 0
DEMO_CHECKPOINT = REPO / "checkpoints" / "bsmamba2-demo"
FIXTURE = REPO.parent / "shared" / "fixtures" / "official-small"
RANDOM_PRESETS = {**CONFIGS, "demo-random": CONFIGS["demo"]}
PRESETS = (*(name for name in RANDOM_PRESETS if name != "demo"), "demo", "fixture")
"""Random weights by config name, the bundled demo checkpoint, and the official fixture's weights."""
DEFAULT_PRESETS = ("released", "demo", "fixture")
PATHS = ("fp32", "bf16", "fp32+compile", "bf16+compile")
DEFAULT_PATHS = ("fp32", "bf16", "bf16+compile")


def load_model(preset: str) -> BSMamba2:
    if preset == "demo":
        return BSMamba2.from_pretrained(str(DEMO_CHECKPOINT))
    if preset == "fixture":
        from model.weights.checkpoint import load_official_checkpoint

        return load_official_checkpoint(FIXTURE / "weights" / "last.ckpt")[0]
    return BSMamba2(RANDOM_PRESETS[preset])


def make_input(preset: str) -> np.ndarray:
    """`(2, samples)` float32: the fixture's own waveform, else 8 s of a generated song."""
    if preset == "fixture":
        return np.load(FIXTURE / "input_waveform.npy").reshape(2, -1).astype(np.float32)
    from model.stft import SAMPLE_RATE
    from utils.synth import SongConfig, generate_song

    song = generate_song(SONG_SEED, SongConfig(duration_s=CHUNK_SECONDS, backend="numpy"))
    return song.mixture[:, : int(CHUNK_SECONDS * SAMPLE_RATE)].astype(np.float32)


def run_one(args: argparse.Namespace) -> dict:
    import torch

    from model.compile import compile_mamba_layers
    from model.precision import prepare_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    precision, _, compiled = args.precision[0].partition("+")
    model = prepare_model(load_model(args.preset[0]).eval(), precision, "cpu")
    model.set_block_elements(args.block_elements or None)
    if compiled:
        compile_mamba_layers(model)
    waveform = torch.from_numpy(np.load(args.input))[None]
    times = []
    with torch.inference_mode():
        start = time.perf_counter()
        model.separate_waveform(waveform)  # warm-up (and compilation)
        first_call = time.perf_counter() - start
        for _ in range(args.runs):
            start = time.perf_counter()
            vocals = model.separate_waveform(waveform)
            times.append(time.perf_counter() - start)
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                model.separate_waveform(waveform)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18), file=sys.stderr)
    np.save(args.output, vocals[0, 0].float().numpy())
    seconds = waveform.shape[-1] / 44100
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "first_call_s": round(first_call, 1),
        "seconds_per_chunk": [round(t, 2) for t in times],
        "seconds_per_audio_second": round(min(times) / seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    reference, estimate = reference.astype(np.float64), estimate.astype(np.float64)
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum((reference - estimate) ** 2), 1e-30)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=PRESETS, action="append", help=f"default: {', '.join(DEFAULT_PRESETS)}")
    parser.add_argument("--precision", choices=PATHS, action="append", help=f"default: {', '.join(DEFAULT_PATHS)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--block-elements", type=int, default=CPU_BLOCK_ELEMENTS, help="0: no block splitting")
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table per run")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(run_one(args)))
        return
    precisions = args.precision or list(DEFAULT_PATHS)
    print(f"{'preset':14} {'precision':12} {'params':>11} {'1st call':>8} {'s/chunk':>16} {'s per s audio':>13} "
          f"{'speed-up':>8} {'peak RSS':>9} {'SDR vs ' + precisions[0]:>12}")
    with tempfile.TemporaryDirectory() as folder:
        for preset in args.preset or DEFAULT_PRESETS:
            if preset == "fixture" and not (FIXTURE / "weights" / "last.ckpt").is_file():
                print(f"{preset:14} skipped: no fixture at {FIXTURE}")
                continue
            source = Path(folder) / f"{preset}-input.npy"
            np.save(source, make_input(preset))
            first = None
            for precision in precisions:
                output = Path(folder) / f"{preset}-{precision}.npy"
                command = [sys.executable, __file__, "--child", "--preset", preset, "--precision", precision,
                           "--threads", str(args.threads), "--runs", str(args.runs),
                           "--block-elements", str(args.block_elements), "--input", str(source),
                           "--output", str(output)] + (["--profile"] if args.profile else [])
                stdout = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
                result = json.loads(stdout.strip().splitlines()[-1])
                speed = result["seconds_per_audio_second"]
                agreement = f"{sdr_db(first[1], np.load(output)):>9.1f} dB" if first else f"{'reference':>12}"
                first = first or (speed, np.load(output))
                print(f"{preset:14} {precision:12} {result['parameters']:>11,} {result['first_call_s']:>7}s "
                      f"{str(result['seconds_per_chunk']):>16} "
                      f"{speed:>13} {first[0] / speed:>7.2f}x {result['peak_rss_mb']:>6} MB {agreement}", flush=True)


if __name__ == "__main__":
    main()
