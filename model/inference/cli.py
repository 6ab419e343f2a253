"""Command line: separate files or folders into vocals and accompaniment.

    python -m model.separate song.mp3 album/ -o separated --format flac --gate

For every input `<name>.<ext>` it writes `<out>/<name>/vocals.<ext>`, `accompaniment.<ext>` and
`activity.json` (the sung phrases, the input's properties and the settings used). Stems come back at the
input's sample rate and channel count (mono in, mono out) unless `--keep-44k`.

Safety: nothing is written outside the output folder (file names are sanitised) and nothing is overwritten.
When `<out>/<name>/` already exists the results go to `<out>/<name> (2)/`, `(3)`, ...; `--overwrite` reuses
`<out>/<name>/` instead, but never replaces one of the inputs. A file that fails is reported and skipped.
Exit status: 0 all separated, 1 some failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from utils.cleanup import GateSettings, apply_sparse_gate
from model.weights.pretrained import load_model
from model.inference.separator import Progress, SeparationSettings, Separator
from model.stft import SAMPLE_RATE
from utils.activity import detect_vocal_activity
from utils.audio import (
    DEFAULT_BIT_DEPTHS,
    OUTPUT_FORMATS,
    DecodedAudio,
    load_audio,
    output_extension,
    to_original_layout,
    write_audio,
)
from utils.errors import SeparationError

log = logging.getLogger("model.separate")

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".aiff", ".aif", ".wma"}
)
"""What a folder scan picks up (anything `utils.audio.load_audio` may decode)."""

STEM_NAMES = ("vocals", "accompaniment")
ACTIVITY_FILE = "activity.json"
UNSAFE_NAME_CHARACTERS = re.compile(r"[^\w\-. ()\[\]&,+']")
MAX_NAME_LENGTH = 120
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class OutputSettings:
    """How the stems are written."""

    fmt: str = "wav"
    bit_depth: int | None = None
    keep_44k: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.bit_depth is not None and self.bit_depth not in OUTPUT_FORMATS[self.fmt]:
            allowed = OUTPUT_FORMATS[self.fmt] or "none"
            raise ValueError(f"--bit-depth for {self.fmt} must be one of {allowed}, got {self.bit_depth}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s: %(message)s", force=True
    )
    try:
        settings = SeparationSettings(
            chunk_seconds=args.chunk_seconds,
            overlap=args.overlap,
            batch_size=args.batch_size,
            device=args.device,
        )
        gate = GateSettings(attenuation_db=args.gate_db) if args.gate else None
        output = OutputSettings(args.format, args.bit_depth, args.keep_44k, args.overwrite)
    except ValueError as error:
        parser.error(str(error))
    out_root = Path(args.output)
    inputs, missing = _collect_inputs(args.inputs, out_root)
    failures = [(path, "no such file or folder") for path in missing]
    if not inputs:
        log.error("no audio files to separate")
        return EXIT_USAGE if not failures else _report(failures)
    try:
        loaded = load_model(args.checkpoint)
        separator = Separator(loaded.model, settings)
    except SeparationError as error:
        log.error("%s", error)
        return EXIT_FAILED
    except ValueError as error:  # e.g. --device cuda without CUDA
        parser.error(str(error))
    log.info("model: %s", loaded.describe())
    log.info("device: %s", separator.device)

    for path in inputs:
        try:
            folder = _separate_file(path, separator, out_root, output, gate, loaded.source, set(inputs))
            log.info("%s -> %s", path, folder)
        except (SeparationError, OSError) as error:  # OSError: the output disk or folder, not the model
            log.error("%s: %s", path, error)
            failures.append((path, str(error)))
    return _report(failures)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model.separate", description="Separate vocals and accompaniment with BSMamba2."
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="audio files or folders (not recursive)")
    parser.add_argument("-o", "--output", type=Path, default=Path("separated"), help="output folder")
    parser.add_argument("--format", choices=sorted(OUTPUT_FORMATS), default="wav", help="output format")
    parser.add_argument("--bit-depth", type=int, help=f"PCM bits (defaults: {DEFAULT_BIT_DEPTHS})")
    parser.add_argument("--checkpoint", help="model folder, Hugging Face repo id or official .ckpt "
                        "(default: $BSMAMBA2_CHECKPOINT, else the bundled model)")
    defaults = SeparationSettings()
    parser.add_argument("--device", default=defaults.device, help="auto, cpu, cuda, cuda:0, ...")
    parser.add_argument("--chunk-seconds", type=float, default=defaults.chunk_seconds)
    parser.add_argument("--overlap", type=float, default=defaults.overlap,
                        help="fraction of a chunk shared with the next, cross-faded (0 = official)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--gate", action="store_true", help="attenuate the vocals where no voice is detected")
    parser.add_argument("--gate-db", type=float, default=GateSettings().attenuation_db,
                        help="attenuation outside the sung phrases with --gate")
    parser.add_argument("--keep-44k", action="store_true", help="write 44.1 kHz stereo stems")
    parser.add_argument("--overwrite", action="store_true", help="reuse <out>/<name>/, not '<name> (2)'")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def _collect_inputs(arguments: Sequence[Path], out_root: Path) -> tuple[list[Path], list[Path]]:
    """Files named, plus the audio files directly inside folders named (not those inside the output)."""
    found: list[Path] = []
    missing: list[Path] = []
    out_resolved = out_root.resolve()
    for argument in arguments:
        if argument.is_dir():
            found.extend(
                path for path in sorted(argument.iterdir())
                if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS
                and not path.resolve().is_relative_to(out_resolved)
            )
        elif argument.exists():
            found.append(argument)
        else:
            missing.append(argument)
    unique = list(dict.fromkeys(path.resolve() for path in found))
    return unique, missing


def _separate_file(
    path: Path,
    separator: Separator,
    out_root: Path,
    output: OutputSettings,
    gate: GateSettings | None,
    checkpoint: str,
    inputs: set[Path],
) -> Path:
    """Separate one file and write its results; returns the folder written."""
    decoded = load_audio(path)
    started = time.perf_counter()
    with tqdm(desc=path.name, unit="chunk", leave=False, file=sys.stderr) as bar:
        def advance(progress: Progress) -> None:
            bar.total = progress.chunks_total
            bar.update(progress.chunks_done - bar.n)

        stems = separator.separate(decoded.waveform, progress=advance)
    activity = detect_vocal_activity(stems["vocals"], SAMPLE_RATE, mixture=decoded.waveform)
    if gate is not None:
        stems = apply_sparse_gate(stems, activity, SAMPLE_RATE, gate)
    seconds = time.perf_counter() - started

    folder = _result_folder(out_root, path, output.overwrite)
    written = {name: folder / f"{name}{output_extension(output.fmt)}" for name in STEM_NAMES}
    if inputs & {target.resolve() for target in (*written.values(), folder / ACTIVITY_FILE)}:
        raise SeparationError(f"'{path.name}': refusing to write over an input file in {folder}.")
    folder.mkdir(parents=True, exist_ok=output.overwrite)
    reports = {}
    for name, target in written.items():
        waveform, rate = _output_layout(stems[name], decoded, output.keep_44k)
        reports[name] = write_audio(
            target, waveform, rate, output.fmt, output.bit_depth, overwrite=output.overwrite
        )
    info = {
        **activity.to_json(),
        "input": {
            "file": path.name,
            "format": decoded.source_format,
            "sample_rate": decoded.original_sample_rate,
            "channels": decoded.original_channels,
            "duration_s": round(decoded.duration_s, 3),
            "warnings": list(decoded.warnings),
        },
        "outputs": {
            name: {"file": report.path.name, "sample_rate": report.sample_rate, "channels": report.channels,
                   "gain_db": round(report.gain_db, 2), "warnings": list(report.warnings)}
            for name, report in reports.items()
        },
        "settings": {
            "checkpoint": checkpoint,
            "separation": dataclasses.asdict(separator.settings),
            "device": str(separator.device),
            "gate": dataclasses.asdict(gate) if gate is not None else None,
            "seconds": round(seconds, 2),
        },
    }
    (folder / ACTIVITY_FILE).write_text(json.dumps(info, indent=2))
    return folder


def _output_layout(stem: np.ndarray, decoded: DecodedAudio, keep_44k: bool) -> tuple[np.ndarray, int]:
    """The stem at 44.1 kHz stereo, or back in the input's rate, channel count and length."""
    if keep_44k:
        return stem, SAMPLE_RATE
    waveform = to_original_layout(
        stem,
        decoded.original_sample_rate,
        decoded.original_channels,
        num_samples=decoded.original_num_samples,
    )
    return waveform, decoded.original_sample_rate


def _result_folder(out_root: Path, path: Path, overwrite: bool) -> Path:
    """`<out>/<safe name>`, or the first free `<out>/<safe name> (k)` unless overwriting."""
    name = safe_name(path.stem)
    folder = out_root / name
    if overwrite:
        return folder
    suffix = 2
    while folder.exists():
        folder = out_root / f"{name} ({suffix})"
        suffix += 1
    return folder


def safe_name(stem: str) -> str:
    """A file name that stays one path component: no separators, no leading dots, not empty, not too long."""
    name = UNSAFE_NAME_CHARACTERS.sub("_", stem).strip(" .")[:MAX_NAME_LENGTH]
    return name or "track"


def _report(failures: list[tuple[Path, str]]) -> int:
    if not failures:
        return EXIT_OK
    print(f"\n{len(failures)} file(s) failed:", file=sys.stderr)
    for path, message in failures:
        print(f"  {path}: {message}", file=sys.stderr)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
