"""Results to pass on: the plots as one web page that works offline, and the phrases as a spreadsheet.

    page = plots_html(figures, title="My song: where the voice is")     # one self-contained HTML file
    table = phrases_csv(activity.segments)                             # phrase,start_s,end_s,length_s
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
import plotly.io as pio

PHRASE_COLUMNS = ("phrase", "start_s", "end_s", "length_s")
# Times in the CSV: milliseconds are finer than any phrase boundary we find (20-ms frames).
CSV_DECIMALS = 3
PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#212121}"
    "h2{font-size:1.1rem;margin:2rem 0 .5rem}"
)


def plots_html(figures: Mapping[str, go.Figure], *, title: str, notes: Sequence[str] = ()) -> str:
    """One HTML page with every figure under its heading (the mapping's keys), Plotly's script inlined once.

    The page needs no network and no server: open it from the zip and hover, zoom and pan as in the app.
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{PAGE_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *(f"<p>{html.escape(note)}</p>" for note in notes),
    ]
    for index, (heading, figure) in enumerate(figures.items()):
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(pio.to_html(figure, full_html=False, include_plotlyjs="inline" if index == 0 else False,
                                 config={"displaylogo": False, "responsive": True}))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def phrases_csv(segments: Sequence[tuple[float, float]]) -> str:
    """The sung phrases as CSV: number (from 1), start, end and length in seconds."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PHRASE_COLUMNS)
    for index, (start, end) in enumerate(segments, start=1):
        writer.writerow([index, *(f"{value:.{CSV_DECIMALS}f}" for value in (start, end, end - start))])
    return buffer.getvalue()
