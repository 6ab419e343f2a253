"""Command line: separate files or folders into vocals and accompaniment.

    python -m model song.mp3 album/ -o separated --format flac [--no-clean-up]

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
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from model.inference.pipeline import VOICE_DETECTORS, OutputSettings, SongResult, SongSettings, separate_file
from model.inference.separator import STEM_NAMES, SeparationSettings, Separator
from model.precision import AUTO, PRECISIONS
from model.weights.pretrained import load_model
from utils.audio import AUDIO_EXTENSIONS, DEFAULT_BIT_DEPTHS, OUTPUT_FORMATS, output_extension
from utils.cleanup import GateSettings
from utils.errors import SeparationError
from utils.files import safe_name

log = logging.getLogger("model.separate")

ACTIVITY_FILE = "activity.json"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


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
            precision=args.precision,
            compile=args.compile,
        )
        song = SongSettings(
            output=OutputSettings(args.format, args.bit_depth, args.keep_44k),
            clean_up=GateSettings(attenuation_db=args.gate_db) if args.clean_up else None,
            voice_detector=args.voice_detector,
        )
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
    log.info("device: %s, precision: %s%s", separator.device, separator.precision,
             ", compiled" if separator.compiled else "")

    for path in inputs:
        try:
            folder = _separate_file(path, separator, out_root, song, args.overwrite, loaded.source, set(inputs))
            log.info("%s -> %s", path, folder)
        except (SeparationError, OSError) as error:  # OSError: the output disk or folder, not the model
            log.error("%s: %s", path, error)
            failures.append((path, str(error)))
    return _report(failures)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model", description="Separate vocals and accompaniment with BSMamba2."
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="audio files or folders (not recursive)")
    parser.add_argument("-o", "--output", type=Path, default=Path("separated"), help="output folder")
    parser.add_argument("--format", choices=sorted(OUTPUT_FORMATS), default="wav", help="output format")
    parser.add_argument("--bit-depth", type=int, help=f"PCM bits (defaults: {DEFAULT_BIT_DEPTHS})")
    parser.add_argument("--checkpoint", help="model folder, Hugging Face repo id or official .ckpt "
                        "(default: $BSMAMBA2_CHECKPOINT, else the bundled model)")
    defaults = SeparationSettings()
    parser.add_argument("--device", default=defaults.device, help="auto, cpu, cuda, cuda:0, ...")
    parser.add_argument("--precision", choices=[AUTO, *PRECISIONS], default=defaults.precision,
                        help="auto: bf16 on a CPU with bf16 hardware, fp16 on CUDA, else fp32 (the reference)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=defaults.compile,
                        help="CPU: compile the Mamba2 layers with TorchInductor (needs a C++ compiler): about "
                             "25%% less network time after a one-off compile of 15-50 s, so it pays off from "
                             "about 10 minutes of audio (bundled model, 2 cores)")
    parser.add_argument("--chunk-seconds", type=float, default=defaults.chunk_seconds)
    parser.add_argument("--overlap", type=float, default=defaults.overlap,
                        help="fraction of a chunk shared with the next, cross-faded (0 = official)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help="chunks per forward pass (default: 4 on a CPU, 8 on CUDA)")
    parser.add_argument("--clean-up", "--gate", action=argparse.BooleanOptionalAction, default=True,
                        help="silence the vocal stem between the sung phrases, moving it to the accompaniment "
                             "(default: on)")
    parser.add_argument("--gate-db", type=float, default=GateSettings().attenuation_db,
                        help="attenuation between the phrases with --clean-up (default: inf, silence)")
    parser.add_argument("--voice-detector", choices=VOICE_DETECTORS, default=SongSettings().voice_detector,
                        help="who finds the phrases: auto (both learned detectors, on the mixture and on the stem, "
                             "when the stem one was trained on this model's stems, else the mixture one "
                             "alone), one of them, or the stem's level")
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
    song: SongSettings,
    overwrite: bool,
    checkpoint: str,
    inputs: set[Path],
) -> Path:
    """Separate one file and write its results; returns the folder written."""
    folder = _result_folder(out_root, path, overwrite)
    targets = {name: folder / f"{name}{output_extension(song.output.fmt)}" for name in STEM_NAMES}
    if inputs & {target.resolve() for target in (*targets.values(), folder / ACTIVITY_FILE)}:
        raise SeparationError(f"'{path.name}': refusing to write over an input file in {folder}.")
    with tqdm(desc=path.name, total=1.0, leave=False, file=sys.stderr,
              bar_format="{desc}: {percentage:3.0f}% {postfix}") as bar:

        def advance(fraction: float, message: str) -> None:
            bar.update(fraction - bar.n)
            bar.set_postfix_str(message)

        result = separate_file(path, separator, targets, song, advance, overwrite=overwrite)
    info = _activity_json(path, result, separator, song, checkpoint)
    (folder / ACTIVITY_FILE).write_text(json.dumps(info, indent=2))
    return folder


def _activity_json(
    path: Path, result: SongResult, separator: Separator, song: SongSettings, checkpoint: str
) -> dict:
    """`activity.json`: the phrases, the input's properties, what was written and the settings used."""
    audio = result.audio
    return {
        **result.activity.to_json(),
        "input": {
            "file": path.name,
            "format": audio.source_format,
            "sample_rate": audio.original_sample_rate,
            "channels": audio.original_channels,
            "duration_s": round(audio.duration_s, 3),
            "warnings": list(audio.warnings),
        },
        "outputs": {
            name: {"file": report.path.name, "sample_rate": report.sample_rate, "channels": report.channels,
                   "gain_db": round(report.gain_db, 2), "warnings": list(report.warnings)}
            for name, report in result.outputs.items()
        },
        "settings": {
            "checkpoint": checkpoint,
            "separation": dataclasses.asdict(separator.settings),
            "device": result.device,
            "precision": result.precision,
            "clean_up": dataclasses.asdict(song.clean_up) if song.clean_up is not None else None,
            "voice_detector": result.voice_detector,
            "seconds": round(result.processing_s, 2),
        },
    }


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


def _report(failures: list[tuple[Path, str]]) -> int:
    if not failures:
        return EXIT_OK
    print(f"\n{len(failures)} file(s) failed:", file=sys.stderr)
    for path, message in failures:
        print(f"  {path}: {message}", file=sys.stderr)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
