"""What a user can pass on: the plots as one offline page, the phrases as CSV."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import plotly.graph_objects as go

from utils.share import PHRASE_COLUMNS, phrases_csv, plots_html


def figure(values: list[float]) -> go.Figure:
    return go.Figure(go.Scatter(y=np.asarray(values, dtype=np.float32)))


def test_page_holds_every_figure_and_plotly_once_without_network() -> None:
    page = plots_html({"Where the voice is": figure([1, 2, 3]), "Waveforms": figure([4, 5])},
                      title="Song <1>", notes=["Separated with BSMamba2."])
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<title>Song &lt;1&gt;</title>" in page and "Separated with BSMamba2." in page
    assert page.index("Where the voice is") < page.index("Waveforms")
    assert page.count("Plotly.newPlot(") == 2
    assert page.count("plotly.js v") == 1  # the library itself, inlined once
    assert not re.search(r'<script[^>]+src="http', page)  # nothing fetched from a CDN


def test_page_carries_the_figures_data() -> None:
    page = plots_html({"curve": figure([0.5, 0.25])}, title="t")
    calls = re.findall(r'Plotly\.newPlot\(\s*"[^"]+",\s*(\[.*?\]),\s*\{', page, flags=re.S)
    assert calls and json.loads(calls[0])[0]["type"] == "scatter"


def test_phrases_csv_has_one_row_per_phrase_in_seconds() -> None:
    rows = list(csv.reader(io.StringIO(phrases_csv([(1.0, 2.5), (10.02, 12.0)]))))
    assert rows == [list(PHRASE_COLUMNS), ["1", "1.000", "2.500", "1.500"], ["2", "10.020", "12.000", "1.980"]]
    assert phrases_csv([]) == ",".join(PHRASE_COLUMNS) + "\n"
