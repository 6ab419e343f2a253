"""Real recorded sounds that Debian ships under free licences, as an optional source for the generator.

Two packages, both optional (the generator falls back to FluidSynth or numpy without them):

- ``hydrogen-drumkits``: multi-sampled recorded drum kits (``<root>/hydrogen/data/drumkits/<kit>/drumkit.xml``).
  ``render_recorded_drums`` plays a drum part's General MIDI hits with one of them.
- ``fretsonfire-songs-muldjord``: four instrumental metal recordings by Muldjord (CC-BY-SA 3.0), each as a
  backing ``song.ogg`` and a ``guitar.ogg`` (``<root>/games/fretsonfire/data/songs/muldjord/<song>/``).
  ``find_backings`` lists them; ``utils.remix`` mixes them under the vocals as real accompaniment.

``python -m utils.synth.recorded OUT_DIR --split held_out --clip-seconds 30`` writes the backings of a split
as instrumental tracks in the MUSDB18-HQ layout (silent vocals; the recording as ``other``), for evaluating
the voice a model invents on real music.

``<root>`` is ``$SYNTH_RECORDINGS_ROOT`` when set (a folder made with ``dpkg -x PACKAGE.deb DIR``, then
``DIR/usr/share``), else ``/usr/share`` (the packages installed with apt). Some kits and one song are held out
of training (``HELD_OUT_KITS``, ``HELD_OUT_BACKINGS``) so that evaluation hears recordings training never did.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from utils.synth.dsp import pan
from utils.synth.numpy_drums import GM_PIECES, PIECE_PANS
from utils.synth.theory import Note

log = logging.getLogger(__name__)

ROOT_ENV = "SYNTH_RECORDINGS_ROOT"
DEFAULT_ROOT = Path("/usr/share")
KITS_DIR = Path("hydrogen/data/drumkits")
BACKINGS_DIR = Path("games/fretsonfire/data/songs/muldjord")
BACKING_FILES = ("song.ogg", "guitar.ogg")  # summed: the band without its lead guitar, then the lead guitar
SPLITS = ("train", "held_out")
# Kits that play a rock/pop kit's pieces (kick, snare, hats), with their licences (debian/copyright).
KIT_LICENCES = {
    "Audiophob": "CC0",
    "BJA_Pacific": "CC-BY-SA-3.0-us (Luc Tunguay)",
    "ColomboAcousticDrumkit": "GPL-2+ (Marcos Guglielmetti)",
    "ElectricEmpireKit": "GPL-2+ (Artemiy Pavlov)",
    "ForzeeStereo": "GPL-2 (Vladimir Sadovnikov, Alexander Belokurov)",
    "HardElectro1": "GPL-2+ (Artemiy Pavlov)",
    "Millo-Drums_v.1": "GPL-2 (Emiliano Grilli)",
    "Millo_MultiLayered2": "GPL-2 (Emiliano Grilli)",
    "Millo_MultiLayered3": "GPL-2 (Emiliano Grilli)",
    "The Black Pearl 1.0": "GPL-2 (Glen MacArthur)",
    "VariBreaks": "GPL-2+ (Artemiy Pavlov)",
    "rumpf_kit_z01_h2": "CC-BY-3.0 (Emanuel Rumpf)",
}
HELD_OUT_KITS = ("ForzeeStereo", "HardElectro1")  # one acoustic, one electronic
BACKING_LICENCE = "CC-BY-SA-3.0 (El Senator / Muldjord, www.muldjord.com)"
HELD_OUT_BACKINGS = ("mutilated_mime",)
REQUIRED_PIECES = ("kick", "snare", "hat_closed")
# A missing piece borrows the sound of the first present one in its list.
PIECE_FALLBACKS = {
    "stick": ("snare",),
    "clap": ("snare",),
    "hat_open": ("hat_closed",),
    "ride": ("hat_open", "hat_closed"),
    "crash": ("ride", "hat_open", "hat_closed"),
    "tom_high": ("tom_mid", "tom_low", "snare"),
    "tom_mid": ("tom_low", "tom_high", "snare"),
    "tom_low": ("tom_mid", "tom_high", "kick"),
}
VELOCITY_EXPONENT = 1.5  # as the numpy kit: loudness follows velocity a little faster than linearly
HIT_GAIN_JITTER_DB = 1.5  # no two hits exactly alike


@dataclass(frozen=True)
class Layer:
    """One sample of a drum piece, played for velocities in ``[low, high]``."""

    path: Path
    low: float
    high: float
    gain: float


@dataclass(frozen=True)
class Kit:
    """A recorded kit: for each piece of ``GM_PIECES`` that it has, its velocity layers."""

    name: str
    licence: str
    pieces: dict[str, tuple[Layer, ...]]


def recordings_root() -> Path:
    """Where the Debian packages' files are: ``$SYNTH_RECORDINGS_ROOT``, else ``/usr/share``."""
    return Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


def _piece_of(instrument_name: str) -> str | None:
    """The ``GM_PIECES`` piece a Hydrogen instrument name plays, or None."""
    name = instrument_name.lower()
    if "kick" in name or "bass drum" in name or "bassdrum" in name:
        return "kick"
    if "hh" in name or "hat" in name:
        if "pedal" in name or " pd" in name:
            return None
        if "open" in name or " op" in name or "semi" in name:
            return "hat_open"
        if "closed" in name or " cl" in name or name.endswith("hat"):
            return "hat_closed"
        return None
    if "stick" in name or "rim" in name:
        return "stick"
    if "clap" in name:
        return "clap"
    if "snare" in name:
        return None if "roll" in name else "snare"
    if "ride" in name:
        return None if "bell" in name or "cup" in name else "ride"
    if "crash" in name:
        return "crash"
    if "tom" in name:
        if "floor" in name or "low" in name:
            return "tom_low"
        if "hi" in name or "1" in name:
            return "tom_high"
        return "tom_mid"
    return None


def read_kit(folder: Path) -> Kit | None:
    """The kit described by ``folder/drumkit.xml``, or None when it lacks a kick, a snare or a closed hat."""
    root = ElementTree.parse(folder / "drumkit.xml").getroot()
    for element in root.iter():  # newer kits put every tag in Hydrogen's XML namespace
        element.tag = element.tag.rpartition("}")[2]
    pieces: dict[str, list[Layer]] = {}
    for instrument in root.iter("instrument"):
        piece = _piece_of(instrument.findtext("name") or "")
        if piece is None or piece in pieces:
            continue
        layers = [
            Layer(
                folder / (layer.findtext("filename") or ""),
                float(layer.findtext("min") or 0.0),
                float(layer.findtext("max") or 1.0),
                float(layer.findtext("gain") or 1.0),
            )
            for layer in instrument.iter("layer")
        ]
        if not layers and instrument.findtext("filename"):  # the older one-sample format
            layers = [Layer(folder / instrument.findtext("filename", ""), 0.0, 1.0, 1.0)]
        layers = [layer for layer in layers if layer.path.is_file()]
        if layers:
            pieces[piece] = layers
    if not all(piece in pieces for piece in REQUIRED_PIECES):
        return None
    for piece, fallbacks in PIECE_FALLBACKS.items():
        if piece not in pieces:
            pieces[piece] = next(pieces[f] for f in (*fallbacks, *REQUIRED_PIECES) if f in pieces)
    name = folder.name
    return Kit(name, KIT_LICENCES.get(name, "see debian/copyright"), {p: tuple(ls) for p, ls in pieces.items()})


@functools.lru_cache(maxsize=4)
def find_kits(split: str, root: Path | None = None) -> tuple[Kit, ...]:
    """The usable kits of ``split`` (``"train"`` or ``"held_out"``) under the recordings root, by name."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    folder = (root or recordings_root()) / KITS_DIR
    if not folder.is_dir():
        return ()
    kits = []
    for kit_folder in sorted(folder.iterdir()):
        if kit_folder.name not in KIT_LICENCES or (kit_folder.name in HELD_OUT_KITS) != (split == "held_out"):
            continue
        kit = read_kit(kit_folder)
        if kit is not None:
            kits.append(kit)
    return tuple(kits)


@functools.lru_cache(maxsize=512)
def _sample(path: Path, sample_rate: int) -> np.ndarray:
    """A kit sample as float64 ``(2, samples)`` at ``sample_rate``, peak-normalised to one."""
    audio, rate = sf.read(path, dtype="float64", always_2d=True)
    audio = audio.T[:2] if audio.shape[1] > 1 else np.repeat(audio.T, 2, axis=0)
    if rate != sample_rate:
        divisor = gcd(rate, sample_rate)
        audio = signal.resample_poly(audio, sample_rate // divisor, rate // divisor, axis=-1)
    peak = np.max(np.abs(audio))
    return audio / peak if peak > 0 else audio


def _layer_for(layers: Sequence[Layer], velocity: float) -> Layer:
    for layer in layers:
        if layer.low <= velocity <= layer.high:
            return layer
    return layers[-1]


def render_recorded_drums(
    rng: np.random.Generator, notes: Sequence[Note], kit: Kit, num_samples: int, sample_rate: int
) -> np.ndarray:
    """A drum part's hits (General MIDI pitches) played with ``kit``: float64 ``(2, samples)``."""
    out = np.zeros((2, num_samples))
    for note in notes:
        piece = GM_PIECES.get(note.pitch)
        start = round(note.start_s * sample_rate)
        if piece is None or start >= num_samples:
            continue
        layer = _layer_for(kit.pieces[piece], note.velocity)
        hit = _sample(layer.path, sample_rate)[:, : num_samples - start]
        jitter = 10.0 ** (rng.uniform(-HIT_GAIN_JITTER_DB, HIT_GAIN_JITTER_DB) / 20.0)
        gain = layer.gain * note.velocity**VELOCITY_EXPONENT * jitter
        out[:, start : start + hit.shape[1]] += pan(gain * hit, PIECE_PANS[piece])
    return out


@dataclass(frozen=True)
class Backing:
    """A real instrumental recording: its files (to be summed), name and licence."""

    name: str
    files: tuple[Path, ...]
    licence: str


def find_backings(split: str, root: Path | None = None) -> list[Backing]:
    """The Muldjord recordings of ``split`` under the recordings root (none when the package is absent)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    folder = (root or recordings_root()) / BACKINGS_DIR
    if not folder.is_dir():
        return []
    backings = []
    for song in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = tuple(song / name for name in BACKING_FILES)
        if all(f.is_file() for f in files) and (song.name in HELD_OUT_BACKINGS) == (split == "held_out"):
            backings.append(Backing(song.name, files, BACKING_LICENCE))
    return backings


def read_backing(backing: Backing) -> tuple[np.ndarray, int]:
    """The summed recording as float32 ``(2, samples)`` and its sample rate."""
    parts = []
    rate = 0
    for path in backing.files:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        parts.append(audio.T if audio.shape[1] > 1 else np.repeat(audio.T, 2, axis=0))
    length = min(p.shape[1] for p in parts)
    return np.sum([p[:, :length] for p in parts], axis=0, dtype=np.float32), rate


def write_instrumentals(out_dir: Path, split: str, clip_seconds: float) -> list[Path]:
    """Each backing of ``split`` cut into ``clip_seconds`` clips, written as MUSDB18-HQ tracks with silent vocals."""
    folders = []
    for backing in find_backings(split):
        audio, rate = read_backing(backing)
        clip = round(clip_seconds * rate)
        for index, start in enumerate(range(0, audio.shape[1] - clip + 1, clip)):
            folder = Path(out_dir) / f"{backing.name}_{index:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            music = audio[:, start : start + clip].T
            silence = np.zeros_like(music)
            for name, stem in (("mixture", music), ("vocals", silence), ("drums", silence), ("bass", silence),
                               ("other", music), ("accompaniment", music)):
                sf.write(folder / f"{name}.wav", stem, rate, subtype="FLOAT")
            folders.append(folder)
    return folders


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: write a split's real backings as instrumental test tracks."""
    parser = argparse.ArgumentParser(prog="python -m utils.synth.recorded", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--split", choices=SPLITS, default="held_out")
    parser.add_argument("--clip-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    folders = write_instrumentals(args.out_dir, args.split, args.clip_seconds)
    if not folders:
        raise SystemExit(f"no {args.split} backings under {recordings_root() / BACKINGS_DIR}")
    print(f"wrote {len(folders)} instrumental tracks to {args.out_dir}")


if __name__ == "__main__":
    main()
