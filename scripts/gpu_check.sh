#!/usr/bin/env bash
# Issue 13's device run (docs/GPU.md). On the GPU machine: install the staged mamba_ssm wheel, point the
# fixture at the staged copy, run scripts/gpu_check.py into $OUT. Without CUDA the same run is CPU-sized.
# Environment: PYTHON (default python3), GPU_STAGE (default gpu_stage), OUT (default gpu_check_out),
# BSMAMBA2_FIXTURES (the folder holding official-small/). Arguments go to scripts/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
STAGE="${GPU_STAGE:-gpu_stage}"
OUT_DIR="${OUT:-gpu_check_out}"
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1
wheels=("$STAGE"/wheels/*.whl)
if [ -e "${wheels[0]}" ]; then
    site="$(mktemp -d)"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "${wheels[@]}"
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -z "${BSMAMBA2_FIXTURES:-}" ] && [ -d "$STAGE/fixtures/official-small" ]; then
    export BSMAMBA2_FIXTURES="$STAGE/fixtures"
fi
exec "$PYTHON" scripts/gpu_check.py --out "$OUT_DIR" "$@"
