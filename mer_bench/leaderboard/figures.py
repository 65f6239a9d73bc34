"""The board's figures from the probe records and gate weights in the result files: robustness curves and reliance
shares on the dataset page, mean gate weights per subset on a model page.

Each figure comes with its numbers (`FigureData.table`), shown under it, so nothing is only readable from a picture.
Values are means over the seeds that recorded them; a row without probe records is left out of a figure (and says
so in the table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mer_bench.metrics import METRICS
from mer_bench.results import RunResult

from mer_bench.leaderboard.ranking import Row
from mer_bench.leaderboard.svg import CONTEXT_COLOUR, CONTEXT_WIDTH, MODALITY_FILLS, Figure, legend, line_style

MODALITIES = ("text", "audio", "vision")
CORRUPTIONS = (("noise", "Gaussian noise on audio and vision features"), ("masking", "whole modalities masked"))
PANEL_WIDTH, PANEL_HEIGHT, LEGEND_WIDTH = 330.0, 230.0, 250.0
MARGIN = {"left": 46.0, "right": 12.0, "top": 26.0, "bottom": 38.0}
# Robustness lines in colour: the first rows of the main table (its ranking order). Eight line styles stay apart in
# greyscale; two dozen coloured lines could not be followed, so the other rows are thin grey lines beneath.
COLOURED_ROWS = 6


@dataclass
class FigureData:
    figure: Figure
    headers: list[str]
    table: list[list[str]] = field(default_factory=list)     # first cell: the row's name; then the numbers


NAME_LIMIT = 36     # characters of a row name in a figure; the full settings are in the tables


def row_name(row: Row) -> str:
    """How a row is named in a figure: model, "tuned" or its settings when they are not the defaults, and the
    output its numbers come from ("probs" for the probabilities, to keep labels short)."""
    settings = row.group.key.settings_text()
    detail = " · tuned" if row.group.tuned else "" if settings == "defaults" else f" ({settings})"
    output = "probs" if row.track == "classification" else row.output
    name = f"{row.group.key.model}{detail}"
    limit = NAME_LIMIT - len(output) - 3
    return f"{name if len(name) <= limit else name[:limit - 1] + '…'} · {output}"


def probed_runs(row: Row) -> list[RunResult]:
    """The row's runs whose probes were measured on the row's track."""
    return [run for run in row.group.runs_with(row.track)
            if run.probes and (run.probes.get("track") or row.track) == row.track]


# ---- robustness ---------------------------------------------------------------------------------------------------

def robustness_curves(row: Row) -> tuple[str, list[float], dict[str, list[float]]] | None:
    """(metric, rates with 0 for the clean score, {corruption: mean metric per rate}) over the row's probed runs."""
    curves: dict[str, list[list[float]]] = {name: [] for name, _ in CORRUPTIONS}
    metric, rates = None, None
    for run in probed_runs(row):
        probes = run.probes
        robustness, metric = probes.get("robustness") or {}, probes.get("metric")
        clean = (probes.get("clean") or {}).get(metric)
        if not isinstance(robustness.get("rates"), list) or clean is None:
            continue
        for name, _ in CORRUPTIONS:
            values = (robustness.get(name) or {}).get(metric)
            if isinstance(values, list) and len(values) == len(robustness["rates"]) and None not in values:
                curves[name].append([float(clean), *map(float, values)])
                rates = [0.0, *map(float, robustness["rates"])]
    if metric not in METRICS or rates is None or not all(curves.values()):
        return None
    return metric, rates, {name: list(np.mean(np.asarray(runs), axis=0)) for name, runs in curves.items()}


def robustness_figure(rows: list[Row], board_id: str) -> FigureData | None:
    """One panel per corruption (metric against rate), one line per row; None when no row recorded probes."""
    found = [(row, curves) for row in rows if (curves := robustness_curves(row)) is not None]
    if not found:
        return None
    metric, rates = found[0][1][0], found[0][1][1]
    found = [(row, curves) for row, curves in found if curves[0] == metric and curves[1] == rates]
    label = METRICS[metric].label
    values = [v for _, (_, _, series) in found for line in series.values() for v in line]
    low, high = np.floor(min(values) * 10) / 10, np.ceil(max(values) * 10) / 10
    high = high if high > low else low + 0.1
    coloured, context = found[:COLOURED_ROWS], found[COLOURED_ROWS:]
    figure = Figure(f"robustness-{board_id}", 2 * PANEL_WIDTH + LEGEND_WIDTH, PANEL_HEIGHT + 20,
                    f"Robustness: test {label} against the corruption rate",
                    f"Line chart, two panels (noise, masking): test {label} at corruption rates "
                    f"{', '.join(f'{rate:g}' for rate in rates)}, the {len(coloured)} first rows of the main table "
                    f"in colour, {len(context)} other rows in grey; the numbers are in the table below the figure.")
    for panel, (name, meaning) in enumerate(CORRUPTIONS):
        _robustness_panel(figure, panel * PANEL_WIDTH, f"{name}: {meaning}", label, rates, (low, high),
                          [(row_name(row), curves[2][name]) for row, curves in coloured],
                          [curves[2][name] for _, curves in context])
    legend(figure, 2 * PANEL_WIDTH + 10, [row_name(row) for row, _ in coloured],
           f"{len(context)} other rows (grey; see the table)" if context else None)
    headers = ["Model · output", *(f"{name} {rate:g}" for name, _ in CORRUPTIONS for rate in rates[1:]), "clean"]
    table = [[row_name(row), *(f"{v:.4f}" for name, _ in CORRUPTIONS for v in curves[2][name][1:]),
              f"{curves[2]['noise'][0]:.4f}"] for row, curves in found]
    return FigureData(figure, headers, table)


def _robustness_panel(figure: Figure, left: float, title: str, label: str, rates: list[float],
                      bounds: tuple[float, float], lines: list[tuple[str, list[float]]],
                      context: list[list[float]]) -> None:
    """`lines`: (row name, values) drawn in colour with markers; `context`: values drawn as grey lines beneath."""
    x0, x1 = left + MARGIN["left"], left + PANEL_WIDTH - MARGIN["right"]
    y0, y1 = PANEL_HEIGHT - MARGIN["bottom"] + 20, MARGIN["top"] + 20       # y0: bottom of the plot area
    low, high = bounds
    x = lambda rate: x0 + (x1 - x0) * rate / max(rates)                     # noqa: E731
    y = lambda value: y0 - (y0 - y1) * (value - low) / (high - low)         # noqa: E731
    figure.text(left + MARGIN["left"], 14, title, css="panel-title")
    figure.line(x0, y0, x1, y0)
    figure.line(x0, y0, x0, y1)
    for tick in np.linspace(low, high, 5):
        figure.line(x0 - 3, y(tick), x1, y(tick), css="grid")
        figure.text(x0 - 5, y(tick) + 3.5, f"{tick:.2f}", anchor="end")
    for rate in rates:
        figure.text(x(rate), y0 + 14, f"{rate:g}", anchor="middle")
    figure.text((x0 + x1) / 2, y0 + 30, "corruption rate (0 = clean)", anchor="middle")
    figure.text(left + 10, (y0 + y1) / 2, label, anchor="middle", css="y-label")
    for line in context:
        figure.polyline([(x(rate), y(value)) for rate, value in zip(rates, line)], CONTEXT_COLOUR, "", CONTEXT_WIDTH)
    for index, (name, line) in enumerate(lines):
        colour, dash, marker = line_style(index)
        figure.polyline([(x(rate), y(value)) for rate, value in zip(rates, line)], colour, dash)
        for rate, value in zip(rates, line):
            figure.marker(x(rate), y(value), marker, colour, f"{name}: {value:.4f}")


# ---- reliance shares and gate weights: stacked and grouped bars ------------------------------------------------------

def reliance_shares(row: Row) -> list[float] | None:
    """Mean share of the main-metric drop per modality (text, audio, vision) over the row's probed runs."""
    shares = []
    for run in probed_runs(row):
        mean = ((run.probes.get("reliance_share") or {}).get("mean") or {})
        if all(isinstance(mean.get(name), (int, float)) for name in MODALITIES):
            shares.append([float(mean[name]) for name in MODALITIES])
    return list(np.mean(np.asarray(shares), axis=0)) if shares else None


def reliance_figure(rows: list[Row], board_id: str) -> FigureData | None:
    """A stacked bar per row: the shares of text, audio and vision in the drop of the main metric when each is
    ablated (mean of zeroing and permuting)."""
    found = [(row, shares) for row in rows if (shares := reliance_shares(row)) is not None]
    if not found:
        return None
    label_width, bar_width, height = 250.0, 420.0, 16.0
    figure = Figure(f"reliance-{board_id}", label_width + bar_width + 20, 50 + len(found) * (height + 6),
                    "Modality reliance: each modality's share of the metric drop when it is ablated",
                    f"Stacked bars, one per model row ({len(found)}): the shares of text, audio and vision in the "
                    "drop of the main metric when each modality is ablated; 1 for text means only text matters. "
                    "The numbers are in the table below the figure.")
    _modality_key(figure, label_width)
    for index, (row, shares) in enumerate(found):
        top = 36 + index * (height + 6)
        figure.text(label_width - 8, top + 12, row_name(row), anchor="end")
        _stacked_bar(figure, label_width, top, bar_width, height, shares)
    headers = ["Model · output", *(f"{name} share" for name in MODALITIES)]
    return FigureData(figure, headers, [[row_name(row), *(f"{v:.3f}" for v in shares)] for row, shares in found])


def _stacked_bar(figure: Figure, left: float, top: float, width: float, height: float, shares: list[float]) -> None:
    """Shares clipped to [0, 1] and scaled to their sum, so a bar always spans the same width."""
    clipped = [min(max(share, 0.0), 1.0) for share in shares]
    total = sum(clipped) or 1.0
    x = left
    for name, share, style in zip(MODALITIES, clipped, MODALITY_FILLS):
        span = width * share / total
        figure.rect(x, top, span, height, style["fill"], style["pattern"], f"{name}: {share:.3f}")
        if span > 34:
            figure.text(x + span / 2, top + 12, f"{share:.2f}", anchor="middle",
                        css="on-dark" if style is MODALITY_FILLS[0] else "")
        x += span


def _modality_key(figure: Figure, left: float) -> None:
    for index, (name, style) in enumerate(zip(MODALITIES, MODALITY_FILLS)):
        x = left + index * 110
        figure.rect(x, 8, 14, 14, style["fill"], style["pattern"])
        figure.text(x + 20, 19, name)


def gates_figure(rows: list[dict[str, Any]], page_id: str) -> FigureData | None:
    """Grouped bars per test subset: the mean gate weight the model gave text, audio and vision there. `rows` are
    `modelpage.gate_rows`: subset label, runs and mean weights."""
    if not rows:
        return None
    label_width, bar_width, height = 160.0, 420.0, 12.0
    group_height = 3 * height + 12
    figure = Figure(f"gates-{page_id}", label_width + bar_width + 60, 40 + len(rows) * group_height,
                    "Mean gate weight per modality on each test subset",
                    f"Grouped bars for {len(rows)} test subsets: the mean weight the model's gate gave text, audio "
                    "and vision on the samples of each subset (0 to 1). The numbers are in the table above.")
    _modality_key(figure, label_width)
    for index, row in enumerate(rows):
        top = 32 + index * group_height
        figure.text(label_width - 8, top + 1.5 * height + 4, row["subset"], anchor="end")
        for offset, (name, value, style) in enumerate(zip(MODALITIES, row["means"], MODALITY_FILLS)):
            if value is None:
                continue
            y = top + offset * height
            figure.rect(label_width, y, bar_width * min(max(value, 0.0), 1.0), height - 2, style["fill"],
                        style["pattern"], f"{name}: {value:.3f}")
            figure.text(label_width + bar_width * min(max(value, 0.0), 1.0) + 4, y + height - 3, f"{value:.3f}")
    return FigureData(figure, [], [])
