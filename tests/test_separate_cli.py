"""The command line `python -m model.separate` on a folder with good and bad files."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from model.bsmamba2 import BSMamba2
from conftest import TINY_CONFIG
from model.separate import main
from utils.files import safe_name

GOOD = {"stereo44.wav": (44100, 2, 1.3), "mono48.wav": (48000, 1, 1.1)}  # name: (rate, channels, seconds)
BAD = "notes.wav"
FAST = ["--chunk-seconds", "0.5"]


@dataclass
class Run:
    code: int
    inputs: Path
    output: Path
    root: Path
    stderr: str
    input_bytes: dict[str, bytes]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    BSMamba2(TINY_CONFIG).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path) -> Run:
    root = tmp_path_factory.mktemp("cli")
    inputs = root / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for name, (rate, channels, seconds) in GOOD.items():
        sf.write(inputs / name, 0.2 * rng.standard_normal((round(rate * seconds), channels)), rate)
    (inputs / BAD).write_text("these are not samples")
    before = {path.name: path.read_bytes() for path in inputs.iterdir()}
    output = root / "out"
    stderr = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stderr(stderr):
        patch.chdir(root)
        code = main([str(inputs), "-o", str(output), "--checkpoint", str(checkpoint), *FAST])
    return Run(code, inputs, output, root, stderr.getvalue(), before)


def test_exit_code_is_one_when_a_file_fails(run: Run) -> None:
    assert run.code == 1


def test_the_bad_file_is_reported(run: Run) -> None:
    assert "1 file(s) failed" in run.stderr
    assert BAD in run.stderr.split("failed:")[-1]


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_files_get_stems_in_their_own_rate_channels_and_length(run: Run, name: str) -> None:
    rate, channels, seconds = GOOD[name]
    for stem in ("vocals", "accompaniment"):
        info = sf.info(run.output / Path(name).stem / f"{stem}.wav")
        assert (info.samplerate, info.channels, info.frames) == (rate, channels, round(rate * seconds))


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_files_get_an_activity_report(run: Run, name: str) -> None:
    report = json.loads((run.output / Path(name).stem / "activity.json").read_text())
    assert {"segments", "summary", "params", "input", "settings"} <= report.keys()
    assert report["input"]["sample_rate"] == GOOD[name][0]


def test_nothing_is_written_outside_the_output_folder(run: Run) -> None:
    written = {path.relative_to(run.root).parts[0] for path in run.root.rglob("*") if path.is_file()}
    assert written == {"inputs", "out"}
    assert sorted(path.name for path in run.output.iterdir()) == sorted(Path(name).stem for name in GOOD)


def test_inputs_are_untouched(run: Run) -> None:
    assert {path.name: path.read_bytes() for path in run.inputs.iterdir()} == run.input_bytes


def test_a_second_run_goes_to_a_numbered_folder(run: Run, checkpoint: Path) -> None:
    name = "stereo44.wav"
    first = (run.output / "stereo44" / "vocals.wav").read_bytes()
    with contextlib.redirect_stderr(io.StringIO()):
        code = main([str(run.inputs / name), "-o", str(run.output), "--checkpoint", str(checkpoint), *FAST])
    assert code == 0
    assert (run.output / "stereo44 (2)" / "vocals.wav").is_file()
    assert (run.output / "stereo44" / "vocals.wav").read_bytes() == first


def test_bad_option_is_a_usage_error(tmp_path: Path) -> None:
    with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), "--overlap", "1.5"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("stem", "expected"), [("../../etc/passwd", "_.._etc_passwd"), ("..", "track"), ("a/b\\c", "a_b_c")]
)
def test_names_are_sanitised_to_one_path_component(stem: str, expected: str) -> None:
    assert safe_name(stem) == expected
