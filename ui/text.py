"""What the user reads: the summary, the phrase table, `report.md` and the model panel."""

from __future__ import annotations

import dataclasses

from model.weights.pretrained import LoadedModel
from ui.results import SeparationResult
from utils.activity import VocalActivity

SEGMENT_HEADERS = ["#", "start", "end", "length"]
MODEL_NAME = "BSMamba2"
DEMO_KIND = "bundled demo"
DEMO_WARNING = (
    "**This is the demo model, trained on synthetic songs only.** It shows how the app works; expect rough "
    "separations of real recordings."
)


def clock(seconds: float) -> str:
    """`83.25` → `1:23.3` (minutes:seconds.tenths)."""
    tenths = round(max(0.0, seconds) * 10)
    minutes, tenths = divmod(tenths, 600)
    return f"{minutes}:{tenths // 10:02d}.{tenths % 10}"


def segment_rows(activity: VocalActivity, offset_s: float = 0.0) -> list[list[object]]:
    """One row per sung phrase: number, start, end (m:ss.s) and length in seconds.

    `offset_s` is added to the times: a preview's phrases are shown at their place in the song.
    """
    return [
        [index, clock(offset_s + start), clock(offset_s + end), f"{end - start:.1f} s"]
        for index, (start, end) in enumerate(activity.segments, start=1)
    ]


def share_line(song_name: str, duration_s: float, activity: VocalActivity) -> str:
    """One plain sentence to paste anywhere: the song, its length and where the voice is."""
    if not activity.segments:
        voice = "no singing found"
    else:
        count = activity.phrase_count
        voice = (f"voice in {100 * activity.voiced_fraction:.0f} % of it, {count} sung "
                 f"{'phrase' if count == 1 else 'phrases'}, the first at {clock(activity.segments[0][0])}")
    return f"“{song_name}” ({clock(duration_s)}): {voice}. Vocals and accompaniment split with {MODEL_NAME}."


def summary_markdown(result: SeparationResult) -> str:
    """The key numbers of a separation, as a short Markdown list."""
    activity = result.activity
    lines = [
        f"**{result.song_name}** — {clock(result.duration_s)} long",
        f"- Voice in **{100 * activity.voiced_fraction:.0f} %** of the song: {activity.phrase_count} "
        f"{'phrase' if activity.phrase_count == 1 else 'phrases'}, longest stretch without voice "
        f"{activity.longest_silence_s:.1f} s",
        f"- Separated on **{result.device}** in {_precision(result.precision)} in {result.processing_s:.1f} s "
        f"({_speed(result.realtime_factor)})",
    ]
    if result.options.clean_up:
        lines.append("- Sparse-region clean-up: on (the vocal stem is silenced between phrases; that sound is in the accompaniment)")
    if result.from_cache:
        lines.append("- Shown from the cache: this file was separated with the same settings a moment ago")
    lines.extend(f"- ⚠️ {warning}" for warning in result.warnings)
    lines.append(f"\n*To share:* {share_line(result.song_name, result.duration_s, result.activity)}")
    return "\n".join(lines)


def report_markdown(result: SeparationResult) -> str:
    """`report.md` for the zip: what was separated, how, and where the voice is."""
    activity = result.activity
    settings = dataclasses.asdict(result.options)
    rows = "\n".join(f"| {' | '.join(map(str, row))} |" for row in segment_rows(activity))
    parts = [
        f"# {result.song_name}: vocals and accompaniment",
        "",
        f"- Source: {result.source_format}, {clock(result.duration_s)} ({result.duration_s:.2f} s)",
        f"- Model: {result.model_description}",
        f"- Settings: {', '.join(f'{k} = {v!r}' for k, v in settings.items())}",
        f"- Device: {result.device}, {_precision(result.precision)}, {result.processing_s:.2f} s "
        f"({_speed(result.realtime_factor)})",
        f"- Voice: {100 * activity.voiced_fraction:.1f} % of the song, {activity.phrase_count} phrases, "
        f"longest stretch without voice {activity.longest_silence_s:.1f} s (found by {_detector(result.voice_detector)})",
        "",
        "## Sung phrases",
        "",
        f"| {' | '.join(SEGMENT_HEADERS)} |",
        f"|{'---|' * len(SEGMENT_HEADERS)}",
        rows or "| – | – | – | – |",
    ]
    if result.warnings:
        parts += ["", "## Notes", "", *(f"- {warning}" for warning in result.warnings)]
    parts += ["", "Phrase times are also in `activity.json` (seconds)."]
    return "\n".join(parts) + "\n"


def is_demo_model(loaded: LoadedModel) -> bool:
    """The bundled demo model, or weights whose provenance says they were trained on synthetic data."""
    return loaded.kind == DEMO_KIND or loaded.trained_on_synthetic_data


def model_panel_markdown(loaded: LoadedModel | None, load_error: str | None = None) -> str:
    """Which weights separate, and where they came from; or why there are none."""
    if loaded is None:
        return f"### ⚠️ No model loaded\n\n{load_error or 'No model weights were found.'} Separation is unavailable."
    text = f"**Model** — {loaded.describe()}"
    return f"{DEMO_WARNING}\n\n{text}" if is_demo_model(loaded) else text


def _speed(realtime_factor: float) -> str:
    if realtime_factor <= 0:
        return "instant"
    if realtime_factor < 1:
        return f"{1 / realtime_factor:.1f}× faster than real time"
    return f"{realtime_factor:.1f}× slower than real time"


def _detector(name: str) -> str:
    return {"both": "the voice detectors on the mixture and on the vocal stem",
            "with-stem": "the voice detector on the mixture and the vocal stem",
            "mixture-only": "the voice detector on the mixture", "level": "the vocal stem's level"}.get(name, name)


def _precision(name: str) -> str:
    return {"fp32": "float32", "bf16": "bfloat16 (the CPU fast path)", "fp16": "float16"}.get(name, name)
