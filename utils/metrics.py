"""Separation metrics: the paper's cSDR and uSDR, computed as the official evaluation does, plus sparse-region
measures (what a separator leaves where the true vocals are silent).

All signals are numpy float arrays shaped `(channels, samples)`; everything is computed in float64.

cSDR is museval 0.4.0's `bss_eval(reference, estimate, window=44100, hop=44100)` (BSS Eval v4, image version,
512-tap distortion filters estimated once on the whole track) reduced with `np.nanmedian`, as in the official
`src/evaluate.py`. With a single source, the image decomposition
`estimate = s_true + e_spat + e_interf + e_artif` puts the whole difference `estimate - reference` in the
distortion, so each window's SDR is `10 log10(|ref|^2 / |est - ref|^2)` whatever the filters are.
`framewise_sdr` computes that directly (fast path); `bss_eval_images` runs the full decomposition with the
filters (reference path, also giving ISR and SAR); the tests hold the two to each other and both to museval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.fft
from einops import rearrange
from scipy.linalg import toeplitz

CSDR_WINDOW_SECONDS = 1.0
"""Window and hop of the framewise SDR: official `evaluate.py` calls `bss_eval(window=44100, hop=44100)`."""

BSS_FILTER_TAPS = 512
"""Length of the distortion filters: museval 0.4.0 `bss_eval(filters_len=512)` default."""

BSS_SOLVE_EPS = float(np.finfo(np.float64).eps)
"""Diagonal loading of the filter normal equations: museval 0.4.0 `_compute_projection_filters`."""

USDR_EPS = 1e-7
"""Added to both energies of the utterance SDR: official `src/utils/utils_test.py` (MDX-21 definition)."""

SILENCE_FRAME_SECONDS = 0.1
"""Frame length of the true-silence mask (ours)."""

SILENCE_FLOOR_DBFS = -60.0
"""A frame is silent below this RMS: the official SAD floor, gamma = 1e-3 (spec section 7)."""

SILENCE_BELOW_MIXTURE_DB = 40.0
"""With a mixture given, a frame is also silent when the vocals sit this far below it (ours)."""

MUSDB_HEADLINE = {"csdr": "median", "usdr": "mean"}
"""Aggregate over tracks that the MUSDB convention reports for each metric."""

SAMPLE_EDGE_DECIMALS = 6
"""Frame edges in samples are rounded to this many decimals before taking the next sample (float noise)."""

_SPAN_SLACK = 1e-9
"""Relative slack on the one-frame tolerance between mask and audio durations (float noise only)."""

_PROJECTION_CHUNK_WINDOWS = 16
"""Windows projected per FFT batch in `bss_eval_images` (memory bound only; no effect on results)."""


class ImageMetrics(NamedTuple):
    """BSS Eval v4 image metrics per window, in dB, each shaped `(windows,)`; NaN where a window is silent.

    SIR is left out: with a single source there is no interference term.
    """

    sdr: np.ndarray
    isr: np.ndarray
    sar: np.ndarray


@dataclass(frozen=True)
class FrameMask:
    """Boolean flags per frame, `values` shaped `(frames,)`; frame i covers `[i, i + 1) / frame_rate` s."""

    values: np.ndarray
    frame_rate: float

    def __post_init__(self) -> None:
        values = np.asarray(self.values)
        if values.ndim != 1 or values.dtype != np.bool_:
            raise ValueError(f"a frame mask is a 1-D boolean array, got {values.dtype} shaped {values.shape}")
        if not self.frame_rate > 0:
            raise ValueError(f"frame_rate must be positive, got {self.frame_rate}")
        object.__setattr__(self, "values", values)

    @property
    def duration(self) -> float:
        """Seconds covered by the mask."""
        return len(self.values) / self.frame_rate

    def sample_mask(self, n_samples: int, sample_rate: int) -> np.ndarray:
        """The mask per sample, shaped `(n_samples,)`; samples past the last frame are False."""
        # Frame i starts at the first sample at or after i / frame_rate seconds; the rounding keeps an edge
        # that falls on a sample up to float error (3000.0000000000005) on that sample.
        starts = np.arange(len(self.values) + 1) * (sample_rate / self.frame_rate)
        edges = np.ceil(np.round(starts, SAMPLE_EDGE_DECIMALS)).astype(np.int64)
        edges = np.minimum(edges, n_samples)
        per_sample = np.repeat(self.values, np.diff(edges))
        return np.pad(per_sample, (0, n_samples - len(per_sample)))


def framewise_sdr(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = 44100) -> np.ndarray:
    """SDR in dB of each consecutive 1-s window, shaped `(windows,)`, as museval's v4 image SDR.

    reference, estimate: `(channels, samples)`. There are `samples // sample_rate` windows (a trailing partial
    second is ignored), or one window over everything when the signal is at most 1 s long. A window where
    the reference or the estimate is silent (its channel sum is zero at every sample, museval's test) is NaN;
    a window with no error is +inf. Raises ValueError on a silent reference or estimate (museval does too).
    Reference path: `bss_eval_images(...).sdr`.
    """
    ref, est = _validated_pair(reference, estimate, require_sound=True)
    ref_w, est_w = _windows(ref, sample_rate), _windows(est, sample_rate)
    sdr = _db(np.sum(ref_w**2, axis=(1, 2)), np.sum((est_w - ref_w) ** 2, axis=(1, 2)))
    return np.where(_silent_windows(ref_w) | _silent_windows(est_w), np.nan, sdr)


def bss_eval_images(
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: int = 44100,
    *,
    filter_taps: int = BSS_FILTER_TAPS,
) -> ImageMetrics:
    """BSS Eval v4 image decomposition per 1-s window, filters estimated once on the whole track.

    reference, estimate: `(channels, samples)`; windows as in `framewise_sdr`. The distortion filter is the
    least-squares projection of the estimate onto the delayed reference (all channels, `filter_taps` delays),
    fitted on the whole track; each window's reference is then filtered with it and the estimate split into
    true image, spatial distortion and artifacts over the window plus the filter's tail. Reference path of
    `framewise_sdr`; about 7 s and 1 GB of memory for a 4-minute stereo track.
    """
    ref, est = _validated_pair(reference, estimate, require_sound=True)
    filters = _distortion_filters(ref, est, filter_taps)
    ref_w, est_w = _windows(ref, sample_rate), _windows(est, sample_rate)
    sdr, isr, sar = (np.empty(len(ref_w)) for _ in range(3))
    for start in range(0, len(ref_w), _PROJECTION_CHUNK_WINDOWS):
        chunk = slice(start, start + _PROJECTION_CHUNK_WINDOWS)
        image = _filter_windows(ref_w[chunk], filters)
        s_true = np.pad(ref_w[chunk], ((0, 0), (0, 0), (0, filter_taps - 1)))
        e_spat = image - s_true
        e_artif = np.pad(est_w[chunk], ((0, 0), (0, 0), (0, filter_taps - 1))) - image
        true_energy = np.sum(s_true**2, axis=(1, 2))
        sdr[chunk] = _db(true_energy, np.sum((e_spat + e_artif) ** 2, axis=(1, 2)))
        isr[chunk] = _db(true_energy, np.sum(e_spat**2, axis=(1, 2)))
        sar[chunk] = _db(np.sum(image**2, axis=(1, 2)), np.sum(e_artif**2, axis=(1, 2)))
    silent = _silent_windows(ref_w) | _silent_windows(est_w)
    return ImageMetrics(*(np.where(silent, np.nan, metric) for metric in (sdr, isr, sar)))


def csdr(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = 44100) -> float:
    """Chunk SDR of one track in dB: NaN-ignoring median of `framewise_sdr`; NaN if every window is silent.

    reference, estimate: `(channels, samples)`. Raises ValueError on a silent reference or estimate.
    """
    sdr = framewise_sdr(reference, estimate, sample_rate)
    scored = sdr[~np.isnan(sdr)]
    return float(np.median(scored)) if len(scored) else float("nan")


def usdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Utterance SDR in dB over the whole track, all samples and channels: `(channels, samples)` each."""
    ref, est = _validated_pair(reference, estimate, require_sound=False)
    return float(10 * np.log10((np.sum(ref**2) + USDR_EPS) / (np.sum((ref - est) ** 2) + USDR_EPS)))


def silent_regions(
    reference_vocals: np.ndarray,
    sample_rate: int,
    *,
    mixture: np.ndarray | None = None,
    frame_seconds: float = SILENCE_FRAME_SECONDS,
    floor_dbfs: float = SILENCE_FLOOR_DBFS,
    below_mixture_db: float = SILENCE_BELOW_MIXTURE_DB,
) -> FrameMask:
    """Frames where the true vocals are silent.

    reference_vocals (and mixture, if given): `(channels, samples)`, full scale 1.0. The signal is cut into
    consecutive frames of `frame_seconds` (the last one may be shorter and is kept). A frame's level is the
    RMS of its loudest channel in dBFS; the frame is silent when that level is below `floor_dbfs`, or, with a
    mixture, at least `below_mixture_db` below the mixture's level in the same frame.
    """
    vocals = _validated_signal(reference_vocals, "reference_vocals")
    frame_length = max(1, round(frame_seconds * sample_rate))
    level = _frame_levels_dbfs(vocals, frame_length)
    silent = level < floor_dbfs
    if mixture is not None:
        mix = _validated_signal(mixture, "mixture")
        if mix.shape != vocals.shape:
            raise ValueError(f"mixture is shaped {mix.shape}, reference_vocals {vocals.shape}")
        silent |= level < _frame_levels_dbfs(mix, frame_length) - below_mixture_db
    return FrameMask(silent, sample_rate / frame_length)


def bleed_level_db(estimate: np.ndarray, mixture: np.ndarray, silent: FrameMask, sample_rate: int) -> float:
    """Level of the estimated vocals inside the true-silent regions, in dB relative to the mixture there.

    estimate, mixture: `(channels, samples)`. The ratio of energies summed over all silent samples and
    channels: -inf when the estimate is exactly zero there, +inf when only the mixture is, NaN with no
    silent region.
    """
    est, mix = _validated_pair(estimate, mixture, require_sound=False, names=("estimate", "mixture"))
    _check_spans(silent.duration, est.shape[-1] / sample_rate, 1 / silent.frame_rate, "silent mask", "audio")
    in_silence = silent.sample_mask(est.shape[-1], sample_rate)
    if not in_silence.any():
        return float("nan")
    estimate_energy = float(np.sum(est[:, in_silence] ** 2))
    mixture_energy = float(np.sum(mix[:, in_silence] ** 2))
    if estimate_energy == 0:
        return float("-inf")
    return float(_db(np.array(estimate_energy), np.array(mixture_energy)))


def false_activity_rate(active: FrameMask, silent: FrameMask) -> float:
    """Fraction of the true-silent time in which a vocal-activity detector fires; NaN with no silent time.

    The masks may have different frame rates: time is split at every frame edge of either mask and each
    piece weighs by its length (with equal rates this is the fraction of silent frames flagged active). Only
    the time both masks cover counts; their lengths may differ by at most one frame of the coarser mask.
    """
    coarser_frame = max(1 / active.frame_rate, 1 / silent.frame_rate)
    _check_spans(active.duration, silent.duration, coarser_frame, "activity mask", "silent mask")
    end = min(active.duration, silent.duration)
    edges = np.union1d(
        np.arange(len(active.values) + 1) / active.frame_rate,
        np.arange(len(silent.values) + 1) / silent.frame_rate,
    )
    edges = np.append(edges[edges < end], end)
    middles, lengths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    is_active = active.values[_frame_index(middles, active)]
    is_silent = silent.values[_frame_index(middles, silent)]
    silent_time = np.sum(lengths[is_silent])
    return float(np.sum(lengths[is_silent & is_active]) / silent_time) if silent_time > 0 else float("nan")


def track_metrics(
    reference_vocals: np.ndarray,
    estimate: np.ndarray,
    mixture: np.ndarray,
    sample_rate: int = 44100,
    *,
    active: FrameMask | None = None,
) -> dict[str, float]:
    """All metrics of one track, keyed as `summarize` expects; each input `(channels, samples)`.

    Keys: csdr, usdr, bleed_db, silent_fraction, and false_activity_rate when a detector's mask is given.
    An all-silent estimate (the "silence" baseline) has no cSDR (museval refuses it): NaN, the rest stands.
    Raises ValueError when the reference is silent: a track without vocals has no cSDR.
    """
    silent = silent_regions(reference_vocals, sample_rate, mixture=mixture)
    estimate_silent = not np.any(estimate)
    metrics = {
        "csdr": float("nan") if estimate_silent and np.any(reference_vocals) else csdr(reference_vocals, estimate, sample_rate),
        "usdr": usdr(reference_vocals, estimate),
        "bleed_db": bleed_level_db(estimate, mixture, silent, sample_rate),
        "silent_fraction": float(np.mean(silent.values)) if len(silent.values) else float("nan"),
    }
    if active is not None:
        metrics["false_activity_rate"] = false_activity_rate(active, silent)
    return metrics


def summarize(per_track: list[dict]) -> dict[str, dict[str, float]]:
    """Mean, std (population), median and count over tracks of every numeric metric, ignoring NaN.

    Non-numeric entries (a track name) are skipped and a missing metric counts as NaN; infinities are kept
    (a bleed of −inf dB: the stem is silent), and make the std NaN.
    Metrics named in `MUSDB_HEADLINE` also get `headline`, the aggregate the MUSDB convention reports
    (median over tracks for cSDR, mean for uSDR). All statistics are NaN when no track has a value.
    """
    names = dict.fromkeys(name for track in per_track for name, value in track.items() if _is_number(value))
    summary = {}
    for name in names:
        values = np.array([track.get(name, np.nan) for track in per_track], dtype=np.float64)
        values = values[~np.isnan(values)]
        stats = {"count": len(values)}
        with np.errstate(invalid="ignore"):  # the std of values with an infinity is NaN, without a warning
            for statistic, reduce in (("mean", np.mean), ("std", np.std), ("median", np.median)):
                stats[statistic] = float(reduce(values)) if len(values) else float("nan")
        if name in MUSDB_HEADLINE:
            stats["headline"] = stats[MUSDB_HEADLINE[name]]
        summary[name] = stats
    return summary


def _validated_signal(signal: np.ndarray, name: str) -> np.ndarray:
    """`signal` as float64 `(channels, samples)`, finite and non-empty."""
    array = np.asarray(signal, dtype=np.float64)
    if array.ndim != 2 or array.shape[-1] == 0:
        raise ValueError(f"{name} must be shaped (channels, samples) with samples > 0, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite samples")
    return array


def _validated_pair(
    first: np.ndarray,
    second: np.ndarray,
    *,
    require_sound: bool,
    names: tuple[str, str] = ("reference", "estimate"),
) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64 `(channels, samples)` of one shape; optionally neither silent (museval's rule)."""
    pair = _validated_signal(first, names[0]), _validated_signal(second, names[1])
    if pair[0].shape != pair[1].shape:
        raise ValueError(f"{names[0]} is shaped {pair[0].shape}, {names[1]} {pair[1].shape}: they must match")
    for name, signal in zip(names, pair, strict=True):
        if require_sound and np.all(np.sum(signal, axis=0) == 0):
            raise ValueError(
                f"the {name} is silent (its channel sum is zero everywhere): SDR is undefined, "
                "and museval refuses it too"
            )
    return pair


def _windows(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    """`(channels, samples)` -> `(windows, channels, window)`, museval's framing with window = hop = 1 s."""
    window = min(round(CSDR_WINDOW_SECONDS * sample_rate), signal.shape[-1])
    n_windows = signal.shape[-1] // window
    return rearrange(signal[:, : n_windows * window], "c (w t) -> w c t", t=window)


def _silent_windows(windows: np.ndarray) -> np.ndarray:
    """`(windows, channels, window)` -> `(windows,)`: True where the channel sum is zero at every sample."""
    return np.all(np.sum(windows, axis=1) == 0, axis=-1)


def _db(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """`10 log10(numerator / denominator)`, +inf where the denominator is zero."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator == 0, np.inf, 10 * np.log10(numerator / denominator))


def _distortion_filters(reference: np.ndarray, estimate: np.ndarray, taps: int) -> np.ndarray:
    """Least-squares filters from the delayed reference to the estimate, `(in_channels, taps, out_channels)`.

    Solves `(G + eps I) c = d`, G the Gram matrix of the reference's channels delayed by 0..taps-1 and d
    their correlations with each estimate channel, both read off FFT cross-correlations of the padded track.
    """
    n_channels, n_samples = reference.shape
    n_fft = scipy.fft.next_fast_len(n_samples + taps - 1, real=True)
    ref_spectra = scipy.fft.rfft(reference, n_fft)
    est_spectra = scipy.fft.rfft(estimate, n_fft)

    def correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """`out[k] = sum_p a[p] b[p + k]` of the signals with spectra a, b; negative k at the end."""
        return scipy.fft.irfft(np.conj(a) * b, n_fft)

    gram = np.empty((n_channels, taps, n_channels, taps))
    for a in range(n_channels):
        for b in range(a, n_channels):
            lags = correlation(ref_spectra[a], ref_spectra[b])
            block = toeplitz(lags[:taps], np.concatenate((lags[:1], lags[:-taps:-1])))
            gram[a, :, b, :], gram[b, :, a, :] = block, block.T
    cross = np.stack(
        [
            np.stack([correlation(ref_spectra[a], est_spectra[c])[:taps] for c in range(n_channels)], axis=-1)
            for a in range(n_channels)
        ]
    )
    gram = rearrange(gram, "a l b m -> (a l) (b m)")
    solution = np.linalg.solve(gram + BSS_SOLVE_EPS * np.eye(len(gram)), rearrange(cross, "a l c -> (a l) c"))
    return rearrange(solution, "(a l) c -> a l c", a=n_channels)


def _filter_windows(windows: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """Full multichannel convolution of `(windows, in_channels, t)` with `(in_channels, taps, out_channels)`
    filters -> `(windows, out_channels, t + taps - 1)`."""
    out_length = windows.shape[-1] + filters.shape[1] - 1
    n_fft = scipy.fft.next_fast_len(out_length, real=True)
    spectra = np.einsum(
        "wif,ifo->wof", scipy.fft.rfft(windows, n_fft), scipy.fft.rfft(filters, n_fft, axis=1)
    )
    return scipy.fft.irfft(spectra, n_fft)[..., :out_length]


def _frame_levels_dbfs(signal: np.ndarray, frame_length: int) -> np.ndarray:
    """`(channels, samples)` -> `(frames,)`: RMS level of the loudest channel per frame, in dBFS."""
    starts = np.arange(0, signal.shape[-1], frame_length)
    sizes = np.diff(np.append(starts, signal.shape[-1]))
    mean_square = np.add.reduceat(signal**2, starts, axis=-1) / sizes
    with np.errstate(divide="ignore"):
        return 10 * np.log10(np.max(mean_square, axis=0))


def _frame_index(times: np.ndarray, mask: FrameMask) -> np.ndarray:
    """Index of the frame of `mask` holding each time in seconds, clipped to the mask."""
    return np.clip(np.floor(times * mask.frame_rate).astype(np.int64), 0, len(mask.values) - 1)


def _check_spans(first: float, second: float, tolerance: float, first_name: str, second_name: str) -> None:
    """Raise ValueError when two durations (s) differ by more than `tolerance`: a frame-rate mix-up."""
    if abs(first - second) > tolerance * (1 + _SPAN_SLACK):
        raise ValueError(
            f"the {first_name} covers {first:.3f} s but the {second_name} {second:.3f} s: "
            "check the frame rate"
        )


def _is_number(value: object) -> bool:
    """True for real numbers (Python or numpy scalars), False for bools, strings and the rest."""
    is_real = isinstance(value, (int, float, np.integer, np.floating))
    return is_real and not isinstance(value, (bool, np.bool_))
