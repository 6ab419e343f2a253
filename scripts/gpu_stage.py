"""Stage what scripts/gpu_check.sh needs on the GPU machine, where `../shared` and PyPI cannot be reached.

Copies the official-small fixture's weights, hparams and the two waveform arrays the check reads into
`gpu_stage/fixtures/official-small/`, builds the pure-Python mamba_ssm wheel into `gpu_stage/wheels/`, and
checks that the staged folder plus the working tree that travels stay under the device's 64 MiB.

    python scripts/gpu_stage.py            # then run(command="bash scripts/gpu_check.sh", carry=["gpu_stage"])
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
STAGE = REPO_ROOT / "gpu_stage"
FIXTURES_ENV = "BSMAMBA2_FIXTURES"
"""The folder that holds `official-small/`; default `../shared/fixtures` beside the repository."""
DEFAULT_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"
FIXTURE_NAME = "official-small"
FIXTURE_FILES = ("weights/last.ckpt", "tb_logs/hparams.yaml", "input_waveform.npy", "separator_output.npy")
"""What gpu_check.py reads; the STFT arrays (10 MB) are left behind: the check computes the input STFT
from the waveform and compares the GPU against the CPU on the device machine."""
MAMBA_SSM = "mamba-ssm==2.3.2.post1"
MAMBA_BUILD_ENV = {"MAMBA_SKIP_CUDA_BUILD": "TRUE", "MAMBA_FORCE_BUILD": "TRUE"}
"""Leave the CUDA extensions out, and skip setup.py's download of a prebuilt wheel (docs/GPU.md)."""
CARRY_LIMIT_BYTES = 64 * 2**20
"""The device tool's limit on the working tree that travels with a call, carried paths included."""


def stage_fixture(source: Path, destination: Path) -> None:
    for name in FIXTURE_FILES:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.stat().st_size != (source / name).stat().st_size:
            shutil.copyfile(source / name, target)


def build_mamba_wheel(wheels: Path) -> Path:
    """The pure-Python mamba_ssm wheel in `wheels` (built once; needs pip's network and torch here)."""
    built = sorted(wheels.glob("mamba_ssm-*.whl"))
    if built:
        return built[-1]
    wheels.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
               str(wheels), MAMBA_SSM]
    subprocess.run(command, env={**os.environ, **MAMBA_BUILD_ENV}, check=True)
    return sorted(wheels.glob("mamba_ssm-*.whl"))[-1]


def travelling_bytes(stage: Path) -> int:
    """Tracked and untracked-not-ignored files of the working tree, plus everything under `stage`."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO_ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    tree = sum((REPO_ROOT / name).stat().st_size for name in listed if name and (REPO_ROOT / name).is_file())
    return tree + sum(path.stat().st_size for path in stage.rglob("*") if path.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", type=Path, default=Path(os.environ.get(FIXTURES_ENV) or DEFAULT_FIXTURES),
                        help=f"the folder holding {FIXTURE_NAME}/ (default ${FIXTURES_ENV} or ../shared/fixtures)")
    args = parser.parse_args(argv)
    stage_fixture(args.fixtures / FIXTURE_NAME, STAGE / "fixtures" / FIXTURE_NAME)
    wheel = build_mamba_wheel(STAGE / "wheels")
    size = travelling_bytes(STAGE)
    print(f"staged {STAGE.relative_to(REPO_ROOT)}/ ({wheel.name}); the call carries {size / 2**20:.1f} MiB "
          f"of {CARRY_LIMIT_BYTES / 2**20:.0f} MiB")
    if size > CARRY_LIMIT_BYTES:
        print("too large for the device: trim the working tree first", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
