"""The device run's script works without a GPU: every section runs on the CPU and the summary says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "gpu_check.sh"
SECTIONS = ["env", "scan", "fixture", "separator", "speed", "memory", "zerogpu", "cuda_tests"]


@pytest.mark.slow
def test_the_gpu_check_runs_every_section_on_a_cpu(tmp_path: Path):
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path / "out"),
           "GPU_STAGE": str(tmp_path / "no-stage"), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(["bash", str(SCRIPT)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["cuda"] is False
    assert summary["failed_checks"] == []
    expected = SECTIONS if not summary.get("fixture_missing") else [s for s in SECTIONS
                                                                      if s not in ("fixture", "separator")]
    assert {name: summary[name]["status"] for name in expected} == dict.fromkeys(expected, "ok")
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary
    speed = summary["speed"]["rows"]
    assert all(row["finite"] and row["s"] > 0 for row in speed)
    assert any(row["sdr_vs_fp32_db"] is not None for row in speed)
    assert set(summary["zerogpu"]["recommended"]) == {"GPU_BASE_S", "GPU_FIRST_CALL_S", "GPU_S_PER_SONG_S"}
