"""The stress page: how models fare as the text conflict rate of the synthetic family rises.

Runs on members of the synthetic family (result files with ``dataset.generator``, see
mer_bench/data/synthetic_family.py) are grouped into series: every knob the same except ``text_conflict``. Per
series, per model (name and overrides) and per conflict rate: the mean over seeds of Acc-2 (Has0) on the
text-conflict test subset, and of the text reliance share from the probes. The page plots both against the rate
(inline SVG, one panel each), lists the numbers in a table, and the same numbers go to stress/stress.json and
stress/stress.csv. Nothing here runs a model; the page is empty of series until such results exist.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter, defaultdict
from typing import Any

from mer_bench.results import RunResult

from mer_bench.leaderboard.downloads import spreadsheet_text
from mer_bench.leaderboard.svg import CONTEXT_COLOUR, CONTEXT_WIDTH, Figure, legend, line_style

METRIC = "has0_acc2"               # defined the same way on both tracks (mer_bench.metrics)
SUBSET = "text-conflict"
VARYING = "text_conflict"
QUANTITIES = (("accuracy", "Acc-2 (Has0) on the text-conflict subset"), ("text_reliance", "Text reliance share"))
WIDTH, HEIGHT, LEGEND = 360.0, 240.0, 230.0
MARGIN = {"left": 48.0, "right": 14.0, "top": 30.0, "bottom": 44.0}

# The page asks whether calibrated consensus helps where the text disagrees, so CMC's two models and the two
# text-leaning fusions the claim is measured against are drawn in colour; with every model in colour (26 today) no
# line could be followed. The others are thin grey lines behind them; every model is in the table.
FOCUS_MODELS = ("cmc", "cmc-gt", "lf-dnn", "tfn")
CMC_MODELS = ("cmc", "cmc-gt")
# The floor and the single-modality references are not multimodal baselines, so never "the best baseline".
REFERENCE_MODELS = ("mean", "unimodal-t", "unimodal-a", "unimodal-v")
BEST_BASELINE = "best multimodal baseline"


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def run_point(run: RunResult) -> tuple[str, str, float, dict[str, float | None]] | None:
    """(series key, model label, conflict rate, {quantity: value}) of a run on a family member, else None."""
    generator = run.dataset.get("generator")
    knobs = generator.get("knobs") if isinstance(generator, dict) else None
    rate = _number(knobs.get(VARYING)) if isinstance(knobs, dict) else None
    if rate is None:
        return None
    series = json.dumps({key: value for key, value in knobs.items() if key != VARYING}, sort_keys=True)
    tracks = ((run.metrics.get("test") or {}).get(SUBSET) or {})
    accuracy = next((value for table in tracks.values() if isinstance(table, dict)
                     and (value := _number(table.get(METRIC))) is not None), None)
    overrides = run.spec.overrides
    label = run.spec.model + (" (" + ", ".join(f"{k}={v}" for k, v in overrides) + ")" if overrides else "")
    return series, label, rate, {"accuracy": accuracy, "text_reliance": _number((run.probes or {}).get(
        "text_reliance_share"))}


def stress_series(runs: list[RunResult]) -> list[dict[str, Any]]:
    """[{"knobs": {...}, "rates": [...], "models": {label: {quantity: [mean or None per rate], "seeds": [n]}}}]."""
    values: dict[str, dict[str, dict[float, dict[str, list[float]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(list))))
    counts: Counter[tuple[str, str, float]] = Counter()    # runs per (series, label, rate), values or not
    for point in filter(None, map(run_point, runs)):
        series, label, rate, measured = point
        counts[series, label, rate] += 1
        entry = values[series][label][rate]     # created even when every value is missing: the rate still shows
        for quantity, value in measured.items():
            if value is not None:
                entry[quantity].append(value)
    result = []
    for series in sorted(values):
        rates = sorted({rate for per_rate in values[series].values() for rate in per_rate})
        models = {label: {**{q: [_mean(per_rate[rate][q]) if rate in per_rate else None for rate in rates]
                             for q, _ in QUANTITIES},
                          "runs": [counts[series, label, rate] for rate in rates]}
                  for label, per_rate in sorted(values[series].items())}
        result.append({"knobs": json.loads(series), "rates": rates, "models": models,
                       "best_multimodal_baseline": best_baseline(models, len(rates))})
    return result


def base_name(label: str) -> str:
    """The model name of a row label ("cmc (layers=2)" -> "cmc")."""
    return label.split(" (", 1)[0]


def best_baseline(models: dict[str, dict[str, list]], count: int) -> dict[str, list]:
    """Per rate, the multimodal baseline (neither CMC nor a reference model) with the highest text-conflict accuracy:
    {"model": [label or None], "accuracy": [value or None], "text_reliance": [that model's share or None]}."""
    candidates = [label for label in models if base_name(label) not in CMC_MODELS + REFERENCE_MODELS]
    best: dict[str, list] = {"model": [], "accuracy": [], "text_reliance": []}
    for position in range(count):
        scored = [(models[label]["accuracy"][position], label) for label in candidates
                  if models[label]["accuracy"][position] is not None]
        winner = min(scored, key=lambda pair: (-pair[0], pair[1]))[1] if scored else None   # ties: first name
        best["model"].append(winner)
        best["accuracy"].append(models[winner]["accuracy"][position] if winner else None)
        best["text_reliance"].append(models[winner]["text_reliance"][position] if winner else None)
    return best


def series_titles(all_series: list[dict[str, Any]]) -> list[str]:
    """Each series named by the knobs that tell it from the others ("text_strength 0.2"), else "Series N"."""
    varying = sorted({key for series in all_series for key, value in series["knobs"].items()
                      if any(other["knobs"].get(key) != value for other in all_series)})
    return [", ".join(f"{key} {series['knobs'].get(key)}" for key in varying) or f"Series {number}"
            for number, series in enumerate(all_series, 1)]


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 6) if values else None


def series_figure(series: dict[str, Any], index: int) -> Figure:
    """Two panels (accuracy on text-conflict, text reliance) against the conflict rate: the focus models and, on the
    accuracy panel, the best multimodal baseline per rate in colour; every other model as a thin grey line."""
    labels = list(series["models"])
    focus = [label for label in labels if base_name(label) in FOCUS_MODELS]
    context = [label for label in labels if label not in focus]
    best = series["best_multimodal_baseline"]
    coloured = [label[:40] for label in (*focus, BEST_BASELINE)]
    figure = Figure(f"stress-{index}", 2 * WIDTH + LEGEND, max(HEIGHT, 40 + 15 * (len(coloured) + 1)),
                    "Text-conflict accuracy and text reliance against the text conflict rate",
                    f"Two line charts over text conflict rates {', '.join(f'{r:g}' for r in series['rates'])}: "
                    f"{', '.join(focus) or 'no focus model'} and the best multimodal baseline per rate in colour, "
                    f"{len(context)} other models in grey; the numbers are in the table below the figure.")
    for panel, (quantity, title) in enumerate(QUANTITIES):
        x, y = _axes(figure, panel * WIDTH, title, series["rates"])
        for label in context:
            _context_line(figure, x, y, series["rates"], series["models"][label][quantity])
        for position, label in enumerate(focus):
            _styled_line(figure, x, y, series["rates"], series["models"][label][quantity], position, [label])
        if quantity == "accuracy":
            _styled_line(figure, x, y, series["rates"], best["accuracy"], len(focus), best["model"])
    legend(figure, 2 * WIDTH + 8, coloured, f"other models ({len(context)}, grey)")
    return figure


def _axes(figure: Figure, left: float, title: str, rates: list[float]):
    """Axes from 0 to 1 on y and the rates' range on x; returns the (x, y) maps from data to the panel."""
    x0, x1 = left + MARGIN["left"], left + WIDTH - MARGIN["right"]
    y0, y1 = HEIGHT - MARGIN["bottom"], MARGIN["top"]
    span = (max(rates) - min(rates)) or 1.0
    x = lambda rate: x0 + (x1 - x0) * (rate - min(rates)) / span       # noqa: E731
    y = lambda value: y0 - (y0 - y1) * min(max(value, 0.0), 1.0)        # noqa: E731
    figure.text(x0, 16, title, css="panel-title")
    figure.line(x0, y0, x1, y0)
    figure.line(x0, y0, x0, y1)
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        figure.line(x0 - 3, y(tick), x1, y(tick), css="grid")
        figure.text(x0 - 5, y(tick) + 3.5, f"{tick:.2f}", anchor="end")
    for rate in rates:
        figure.text(x(rate), y0 + 14, f"{rate:g}", anchor="middle")
    figure.text((x0 + x1) / 2, y0 + 32, "text conflict rate", anchor="middle")
    return x, y


def _points(x, y, rates: list[float], values: list[float | None]) -> list[tuple[float, float, float, int]]:
    return [(x(rate), y(value), value, i) for i, (rate, value) in enumerate(zip(rates, values)) if value is not None]


def _context_line(figure: Figure, x, y, rates: list[float], values: list[float | None]) -> None:
    """A grey line without markers: the model is in the table, the line only shows where the field lies."""
    points = [(px, py) for px, py, _, _ in _points(x, y, rates, values)]
    if len(points) > 1:
        figure.polyline(points, CONTEXT_COLOUR, "", CONTEXT_WIDTH)


def _styled_line(figure: Figure, x, y, rates: list[float], values: list[float | None], style: int,
                 names: list[str | None]) -> None:
    """A coloured line with markers whose hover text names the model (`names`: one, or one per rate) and value;
    broken where a value is missing."""
    colour, dash, marker = line_style(style)
    points = _points(x, y, rates, values)
    if len(points) > 1:
        figure.polyline([(px, py) for px, py, _, _ in points], colour, dash)
    for px, py, value, i in points:
        name = names[i] if len(names) == len(rates) else names[0]
        figure.marker(px, py, marker, colour, f"{name}: {value:.4f}")


def stress_csv(all_series: list[dict[str, Any]]) -> str:
    """One row per series, model and rate; labels from result files are prefixed when they could be formulas."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["series", "knobs", "model", "text_conflict", "runs", "accuracy_text_conflict", "text_reliance"])
    for number, series in enumerate(all_series, 1):
        knobs = json.dumps(series["knobs"], sort_keys=True)
        for label, row in series["models"].items():
            for position, rate in enumerate(series["rates"]):
                writer.writerow([number, knobs, spreadsheet_text(label), rate, row["runs"][position],
                                 row["accuracy"][position], row["text_reliance"][position]])
    return out.getvalue()



def stress_files(runs: list[RunResult]) -> dict[str, str]:
    """{path: text} of the stress page and its downloads; {} when no run is on a family member."""
    from mer_bench.leaderboard.render import render

    all_series = stress_series(runs)
    if not all_series:
        return {}
    pages = [{"number": number, "title": title, "knobs": series["knobs"], "rates": series["rates"],
              "models": series["models"], "best": series["best_multimodal_baseline"],
              "figure": series_figure(series, number)}
             for number, (series, title) in enumerate(zip(all_series, series_titles(all_series)), 1)]
    return {"stress/index.html": render("stress.html", root="../", pages=pages, quantities=QUANTITIES,
                                          focus=", ".join(FOCUS_MODELS), best_label=BEST_BASELINE),
            "stress/stress.json": json.dumps({"format_version": 1, "metric": METRIC, "subset": SUBSET,
                                              "series": all_series}, indent=1, sort_keys=True) + "\n",
            "stress/stress.csv": stress_csv(all_series)}
