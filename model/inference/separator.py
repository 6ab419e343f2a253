"""Run BSMamba2 over a whole song: cut into chunks, separate batch by batch, stitch, crop.

With the defaults this is the official separator (official-model.md §5, `src/separator.py` with the `test_dataset`
settings): 8-s chunks, hop = chunk (no overlap, no window), right zero-padding by
`hop − ((samples − chunk) mod hop)`, plain overlap-add, crop. With `overlap > 0` neighbouring chunks share
`overlap · chunk` samples and are cross-faded (see `chunk_weights`).

Memory stays bounded by the batch: only one batch of chunks (and their STFTs) exists at a time, and each
separated batch is added straight into the output buffer, which has the input's length.

    separator = Separator(load_model().model)
    stems = separator.separate(mixture)      # {"vocals": (2, n), "accompaniment": (2, n)}
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from model.bsmamba2 import BSMamba2
from model.compile import compile_mamba_layers, compiler_available, uncompile_mamba_layers
from model.kernels import use_device_defaults
from model.precision import AUTO, PRECISIONS, inference_autocast, prepare_model, resolve_precision
from model.stft import SAMPLE_RATE
from model.weights.fingerprint import weights_fingerprint

__all__ = ["STEM_NAMES", "SeparationSettings", "Progress", "SampleWindow", "Separator", "chunk_starts", "chunk_weights", "padded_length"]

log = logging.getLogger(__name__)

OFFICIAL_CHUNK_SECONDS = 8.0
"""`win_size` = `hop_size` = 8 s in the official `src/conf/test_dataset/default.yaml` (official-model.md §5)."""


VOCALS = "vocals"
ACCOMPANIMENT = "accompaniment"
STEM_NAMES = (VOCALS, ACCOMPANIMENT)
"""What a separation returns: the vocals, and the rest of the mixture (`mixture − vocals`)."""

CPU_BLOCK_ELEMENTS = 1 << 20
"""CPU inference runs a bidirectional block on about this many (step × d_inner) activations at once: 1024 steps
of the released model. Speed only: fastest of 512-8192 steps on a 2-core CPU (scripts/bench_model.py)."""


@dataclass(frozen=True)
class SeparationSettings:
    """How a song is cut and run. The defaults reproduce the official inference."""

    chunk_seconds: float = OFFICIAL_CHUNK_SECONDS
    overlap: float = 0.0  # fraction of a chunk shared with the next one, 0 <= overlap < 1; 0 = official
    batch_size: int | None = None  # chunks per forward pass; None: the device's (model.kernels); same results
    device: str = "auto"  # "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:0", ...
    precision: str = AUTO  # "auto": fp16 autocast on CUDA, bf16 on a CPU with bf16 hardware, else fp32
    compile: bool = False  # CPU: run the Mamba2 layers through TorchInductor (model.compile); same results

    def __post_init__(self) -> None:
        if not (math.isfinite(self.chunk_seconds) and self.chunk_seconds > 0):
            raise ValueError(f"chunk_seconds must be positive, got {self.chunk_seconds}")
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {self.overlap}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.precision != AUTO and self.precision not in PRECISIONS:
            raise ValueError(f"precision must be 'auto' or one of {sorted(PRECISIONS)}: {self.precision!r}")
        if self.hop_samples < 1:
            raise ValueError(f"overlap {self.overlap} leaves no hop between chunks of {self.chunk_seconds} s")

    @property
    def chunk_samples(self) -> int:
        return round(self.chunk_seconds * SAMPLE_RATE)

    @property
    def hop_samples(self) -> int:
        return round(self.chunk_samples * (1.0 - self.overlap))


@dataclass(frozen=True)
class Progress:
    """How far a separation is, reported after each batch."""

    chunks_done: int
    chunks_total: int

    @property
    def fraction(self) -> float:
        return self.chunks_done / self.chunks_total if self.chunks_total else 1.0


def padded_length(num_samples: int, chunk: int, hop: int) -> int:
    """Length after the official right zero-padding: `samples + hop − ((samples − chunk) mod hop)`.

    Python's modulo, as in the official code: a remainder of 0 still adds a whole hop (an exact 8 s becomes
    16 s) and, with hop = chunk, an input shorter than a chunk becomes one chunk. With overlap (hop < chunk)
    the formula can fall short of a chunk, hence a floor of one chunk (the official code would also pad the
    start by `chunk − hop`; our cross-fade weights do not need that).
    """
    return max(chunk, num_samples + hop - ((num_samples - chunk) % hop))


def chunk_starts(num_samples: int, chunk: int, hop: int) -> list[int]:
    """Start sample of every chunk of the padded signal that holds at least one input sample.

    The official code also separates chunks made only of padding; their output is cropped away, so they are
    skipped here (same result, less work).
    """
    last = padded_length(num_samples, chunk, hop) - chunk
    return [start for start in range(0, last + 1, hop) if start < num_samples]


def chunk_weights(index: int, count: int, chunk: int, hop: int) -> np.ndarray:
    """`(chunk,)` float32 weight of chunk `index` of `count` (chunk k starts at k·hop); they sum to 1.

    Each chunk gets a trapezoid with linear ramps as long as the overlap L,
    `min(1, (i + ½)/L, (chunk − i − ½)/L)`, never zero. The weight is that trapezoid divided by the sum of
    the trapezoids of every chunk covering the sample (from the neighbours: no song-long buffer needed).
    Where two chunks overlap this is an exact linear cross-fade; at the start of the first chunk and the end
    of the last, where only one chunk covers, the weight is 1. Without overlap every weight is 1 (the
    official plain overlap-add). For overlap > ½ three or more chunks mix, still summing to 1.
    """
    reach = math.ceil(chunk / hop) - 1  # neighbours on each side that overlap a chunk
    return _normalised_trapezoid(min(index, reach), min(count - 1 - index, reach), chunk, hop)


@functools.lru_cache(maxsize=16)
def _normalised_trapezoid(left: int, right: int, chunk: int, hop: int) -> np.ndarray:
    """The weight of a chunk with `left` and `right` overlapping neighbours (interior chunks share one)."""
    if hop >= chunk:
        return np.ones(chunk, dtype=np.float32)
    positions = np.arange(chunk, dtype=np.float64)
    total = sum(_trapezoid(positions + k * hop, chunk, chunk - hop) for k in range(-right, left + 1))
    weights = (_trapezoid(positions, chunk, chunk - hop) / total).astype(np.float32)
    weights.flags.writeable = False
    return weights


def _trapezoid(positions: np.ndarray, chunk: int, ramp: int) -> np.ndarray:
    """The un-normalised cross-fade window at `positions` (0 outside `[0, chunk)`)."""
    inside = (positions >= 0) & (positions < chunk)
    shape = np.minimum(1.0, np.minimum(positions + 0.5, chunk - positions - 0.5) / ramp)
    return np.where(inside, shape, 0.0)


class Separator:
    """A model placed on a device, ready to separate songs of any length."""

    def __init__(self, model: BSMamba2, settings: SeparationSettings = SeparationSettings()) -> None:
        self.settings = settings
        self.device = _resolve_device(settings.device)
        self.precision = resolve_precision(settings.precision, self.device)  # what runs: "fp32", "bf16", "fp16"
        self.model = model.to(self.device).eval()
        # mamba_ssm's kernels on CUDA when present, and the batch size measured best for the device.
        self.device_defaults = use_device_defaults(self.model, self.device)
        self.batch_size = settings.batch_size or self.device_defaults.batch_size
        self.model = prepare_model(self.model, self.precision, self.device)  # CPU bf16: weights cast once
        if self.device.type == "cpu":
            self.model.set_block_elements(CPU_BLOCK_ELEMENTS)
        # The model object may be shared with earlier separators: compile or uncompile it to match.
        self.compiled = settings.compile and self.device.type == "cpu" and compiler_available()
        if self.compiled:
            compile_mamba_layers(self.model)
        else:
            uncompile_mamba_layers(self.model)
        self.channels = model.config.audio_channels
        if VOCALS not in model.config.stems:
            raise ValueError(f"the model has no '{VOCALS}' stem: {model.config.stems}")
        self.vocals_index = model.config.stems.index(VOCALS)

    def separate(
        self, mixture: np.ndarray, progress: Callable[[Progress], None] | None = None
    ) -> dict[str, np.ndarray]:
        """Mixture float32 `(2, samples)` at 44.1 kHz → `{"vocals", "accompaniment"}`, float32 `(2, samples)`.

        `accompaniment` is `mixture − vocals`. `progress` is called after each batch of chunks.
        """
        self._check_block(mixture)
        vocals = np.concatenate(list(self.separate_stream([mixture], progress, mixture.shape[1])), axis=1)
        return {VOCALS: vocals, ACCOMPANIMENT: mixture - vocals}

    def separate_stream(
        self,
        blocks: Iterable[np.ndarray],
        progress: Callable[[Progress], None] | None = None,
        expected_samples: int | None = None,
    ) -> Iterator[np.ndarray]:
        """Mixture blocks float32 `(2, n_i)` in order → the vocals as blocks `(2, m_j)`, in order.

        The output equals `separate` of the whole song sample for sample: the same chunks go through the
        network in the same batches and are added in the same order. Only about `batch_size + 2` chunks of
        audio are held at a time, whatever the song's length. `expected_samples` (e.g. from the file's
        header) sizes the progress reports until the input ends.
        """
        chunk, hop, batch_size = self.settings.chunk_samples, self.settings.hop_samples, self.batch_size
        reach = math.ceil(chunk / hop) - 1  # neighbours on each side whose chunks overlap a chunk
        pending = SampleWindow(self.channels)  # input not yet needed by any chunk is dropped
        output = SampleWindow(self.channels)  # vocals not yet final
        separated: dict[int, np.ndarray] = {}  # chunk index → its vocals, waiting for their weights
        received = computed = added = 0
        ended = False
        with torch.inference_mode():
            for block in itertools.chain(blocks, [None]):
                if block is None:
                    ended = True
                else:
                    self._check_block(block)
                    pending.append(block)
                    received += block.shape[1]
                count = len(chunk_starts(received, chunk, hop)) if ended else None
                # Run every batch whose chunks all have their input (the batches of `separate`: b·B … b·B+B−1).
                while True:
                    last = computed + batch_size - 1
                    if ended:
                        last = min(last, count - 1)
                        if last < computed:
                            break
                    elif received < last * hop + chunk:
                        break
                    indices = list(range(computed, last + 1))
                    waves = self._separate_batch(pending, [index * hop for index in indices], chunk)
                    separated.update(zip(indices, waves, strict=True))
                    computed = last + 1
                    pending.drop_before(computed * hop)
                    if progress is not None:
                        total = count or len(chunk_starts(max(received, expected_samples or 0), chunk, hop))
                        progress(Progress(computed, max(total, computed)))
                # Add the chunks whose weights are known: the last chunks' depend on how many follow them.
                while added in separated and (ended or _chunk_exists(added + reach, received, chunk, hop)):
                    start = added * hop
                    total = count if ended else added + reach + 1
                    weights = chunk_weights(added, total, chunk, hop)
                    end = min(start + chunk, received)
                    output.add(start, (separated.pop(added) * weights)[:, : end - start])
                    added += 1
                final = received if ended else min(added * hop, received)
                if final > output.start:
                    yield output.take_until(final)

    def _separate_batch(self, mixture: SampleWindow, starts: list[int], chunk: int) -> np.ndarray:
        """Vocals of the chunks at `starts` (zero-padded past the end): `(len(starts), channels, chunk)`."""
        batch = torch.zeros(len(starts), self.channels, chunk)
        for row, start in enumerate(starts):
            piece = mixture.read(start, start + chunk)
            batch[row, :, : piece.shape[1]] = torch.from_numpy(piece)
        return self._vocals(batch)

    def _vocals(self, batch: torch.Tensor) -> np.ndarray:
        """The network on a batch of chunks `(n, channels, chunk)` → vocals `(n, channels, chunk)` float32;
        falls back to eager for good if the compiled layers fail (e.g. a broken compiler toolchain)."""
        try:
            with inference_autocast(self.precision, self.device):
                stems = self.model.separate_waveform(batch.to(self.device))
        except Exception as error:
            if not self.compiled:
                raise
            log.warning("compiled model failed (%s: %s); running eager", type(error).__name__, error)
            uncompile_mamba_layers(self.model)
            self.compiled = False
            return self._vocals(batch)
        return stems[:, self.vocals_index].float().cpu().numpy()

    @functools.cached_property
    def weights_fingerprint(self) -> str:
        """`model.weights.fingerprint.weights_fingerprint` of the weights it runs (the same before and after
        the CPU fast path's cast), computed once."""
        return weights_fingerprint(self.model)

    def warm_up(self) -> None:
        """Run the batch shapes a song needs once (a full batch and a single chunk) on silence, so that the
        first song does not wait for compilation. Does nothing when the model runs eager."""
        if not self.compiled:
            return
        with torch.inference_mode():
            for count in sorted({self.batch_size, 1}, reverse=True):
                self._vocals(torch.zeros(count, self.channels, self.settings.chunk_samples))

    def _check_block(self, mixture: np.ndarray) -> None:
        if not isinstance(mixture, np.ndarray) or mixture.dtype != np.float32:
            raise ValueError(f"mixture must be a float32 numpy array, got {type(mixture).__name__} "
                             f"{getattr(mixture, 'dtype', '')}")
        if mixture.ndim != 2 or mixture.shape[0] != self.channels or mixture.shape[1] == 0:
            raise ValueError(f"mixture must be shaped ({self.channels}, samples > 0), got {mixture.shape}")
        if not np.isfinite(mixture).all():
            raise ValueError("mixture contains NaN or infinite samples")


class SampleWindow:
    """The samples `[start, start + width)` of a longer signal `(channels, ·)`: blocks in, blocks out."""

    def __init__(self, channels: int) -> None:
        self.start = 0
        self._samples = np.zeros((channels, 0), dtype=np.float32)

    def append(self, block: np.ndarray) -> None:
        """Add `block` right after the samples held."""
        self._samples = np.concatenate([self._samples, block], axis=1)

    def add(self, start: int, block: np.ndarray) -> None:
        """Add `block` into the samples from `start` on (`start >= self.start`), zero-extending as needed."""
        offset, end = start - self.start, start - self.start + block.shape[1]
        if end > self._samples.shape[1]:
            grown = np.zeros((self._samples.shape[0], end), dtype=np.float32)
            grown[:, : self._samples.shape[1]] = self._samples
            self._samples = grown
        self._samples[:, offset:end] += block

    def read(self, start: int, stop: int) -> np.ndarray:
        """The samples held in `[start, stop)` (fewer at the end of what is held)."""
        return self._samples[:, start - self.start : stop - self.start]

    def drop_before(self, position: int) -> None:
        """Forget the samples before `position`."""
        if position > self.start:
            self._samples = self._samples[:, position - self.start :].copy()
            self.start = position

    def take_until(self, position: int) -> np.ndarray:
        """The samples `[start, position)` (zeros where nothing was added), then forget them."""
        taken = np.zeros((self._samples.shape[0], position - self.start), dtype=np.float32)
        kept = min(taken.shape[1], self._samples.shape[1])
        taken[:, :kept] = self._samples[:, :kept]
        self.drop_before(position)
        return taken


def _chunk_exists(index: int, received: int, chunk: int, hop: int) -> bool:
    """Whether chunk `index` is sure to be separated once `received` samples have arrived (see chunk_starts)."""
    return index == 0 or (received > index * hop and received >= (index - 1) * hop + chunk)


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here")
    return device
