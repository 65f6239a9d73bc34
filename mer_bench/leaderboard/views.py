"""What the templates show: tables and cells turned into display strings, hover text and sort values.

Keeping the formatting here (not in the templates) makes the templates plain markup and lets tests check the words
a reader sees without parsing HTML.
"""

from __future__ import annotations

from typing import Any

from mer_bench.stats import CONFIDENCE, PERMUTATIONS

from mer_bench.leaderboard.boards import Board, alignment_text
from mer_bench.leaderboard.columns import Column, reported_value
from mer_bench.leaderboard.ranking import ALPHA, Cell, Row, Table

DIGITS = 4
TRACK_TITLES = {"comparison": "All models, both tracks",
                "regression": "Regression track (continuous sentiment score)",
                "classification": "Classification track (3 classes: negative, neutral, positive)"}
GROUP_TITLES = {"all": "Whole test split", "subset": "Test subsets", "probe": "Probes (not ranked)"}
MARK_SYMBOLS = {"best": "★", "tied": "≈"}
TEST_NAMES = {"permutation": "paired permutation test on per-sample test predictions",
              "t-test": "paired t-test over seeds"}

METHOD_TEXT = (
    f"Each cell is the mean ± sample standard deviation (ddof = 1) over seeds; hover a cell for its "
    f"{CONFIDENCE:.0%} confidence interval (Student t with n − 1 degrees of freedom) and the number of seeds. "
    f"★ marks the best mean of a column. ≈ marks a model that is not significantly worse than the best: a two-sided "
    f"paired permutation test at α = {ALPHA} ({PERMUTATIONS} random swaps of the two models' per-sample test "
    f"predictions, pooled over the seeds both ran) does not reject equality. Where two runs' predictions cannot be "
    f"paired sample by sample (other sample ids or labels, or a subset missing from a file), a two-sided paired "
    f"t-test over the matched seeds is used instead; a row whose runs kept no per-sample predictions is not ranked "
    f"at all, since its metrics cannot be checked. Each cell's hover text names "
    f"the test and its p-value. There is no correction for multiple comparisons. Reported rows are copied from "
    f"their source, never tested and never ranked."
)


def number(value: float | None, digits: int = DIGITS) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def mean_std_text(mean: float | None, std: float | None, digits: int = DIGITS) -> str:
    """mean ± std (the mean alone without a spread); "n/a" when undefined."""
    if mean is None:
        return "n/a"
    return number(mean, digits) + ("" if std is None else f" ± {number(std, digits)}")


def sort_value(value: float | None) -> str:
    """A value for the numeric sort, exact enough to order cells and stable across rebuilds."""
    return "" if value is None else f"{value:.9g}"


def cell_text(cell: Cell, seeds: int) -> str:
    """mean ± std; the number of seeds is added when the metric is undefined on some of the row's seeds."""
    summary = cell.summary
    text = mean_std_text(summary.mean, summary.std)
    return text if summary.mean is None or summary.n == seeds else f"{text} (n = {summary.n})"


def cell_title(cell: Cell, column: Column) -> str:
    """Hover text: spread, CI, seeds, and the test against the best row."""
    summary = cell.summary
    if summary.mean is None:
        return f"{column.label}: undefined on every seed"
    parts = [f"{column.label}: mean {summary.mean:.6f}"]
    if summary.std is not None:
        parts.append(f"sample std (ddof=1) {summary.std:.6f}")
    parts.append(f"n = {summary.n} seed{'s' if summary.n != 1 else ''}")
    if summary.ci_low is not None:
        parts.append(f"{CONFIDENCE:.0%} CI [{summary.ci_low:.4f}, {summary.ci_high:.4f}] (t-based)")
    else:
        parts.append(f"no {CONFIDENCE:.0%} CI from a single seed")
    if cell.mark == "best":
        parts.append("best in this column")
    elif cell.test is not None:
        verdict = "not significantly worse than the best (tied)" if cell.mark == "tied" else "worse than the best"
        parts.append(f"vs best: {TEST_NAMES[cell.test.method]} over {cell.test.seeds} seed(s), "
                     f"p = {cell.test.p_value:.4f}: {verdict}")
    elif cell.unverified and column.ranked:
        parts.append("not ranked: a run of this row kept no per-sample predictions, so its metrics could not be "
                     "checked")
    elif column.ranked:
        parts.append("not tested against the best: needs per-sample predictions of both on a common seed, or "
                     "values of both on at least 2 common seeds")
    return "; ".join(parts)


def cell_view(cell: Cell, column: Column, seeds: int) -> dict[str, Any]:
    """The cell's text in two parts: the mean (with n when some seeds lack it) and, on a second line, ± std."""
    summary = cell.summary
    mean = number(summary.mean) + ("" if summary.mean is None or summary.n == seeds else f" (n = {summary.n})")
    return {"text": cell_text(cell, seeds), "mean": mean,
            "std": "" if summary.mean is None or summary.std is None else f"± {number(summary.std)}",
            "title": cell_title(cell, column), "value": sort_value(summary.mean), "kind": column.kind,
            "mark": cell.mark, "symbol": MARK_SYMBOLS.get(cell.mark, "")}


def column_group(column: Column) -> str:
    if column.kind == "probe":
        return "probe"
    return "all" if column.kind in ("metric", "shared") and column.subset == "all" else "subset"


def column_groups(columns: list[Column]) -> list[dict[str, Any]]:
    """Runs of neighbouring columns under one group header (whole split, subsets, probes)."""
    groups: list[dict[str, Any]] = []
    for column in columns:
        name = column_group(column)
        if groups and groups[-1]["name"] == name:
            groups[-1]["span"] += 1
        else:
            groups.append({"name": name, "title": GROUP_TITLES[name], "span": 1})
    return groups


def row_view(row: Row, columns: list[Column]) -> dict[str, Any]:
    group = row.group
    alignment = group.key.alignment
    return {"model": group.key.model, "settings": group.key.settings_text(), "page": group.page,
            "aligned": None if alignment is None else alignment_text(alignment),   # the row's "aligned" badge
            "track": row.track, "output": row.output,
            "seeds": len(row.seeds), "seed_list": ", ".join(str(seed) for seed in row.seeds),
            "tuned": [{"page": item.page, "summary": item.summary} for item in group.tuned],
            "cells": [cell_view(row.cells[column.id], column, len(row.seeds)) for column in columns]}


def reported_view(table: Table) -> list[dict[str, Any]]:
    rows = []
    for reported in table.reported:
        cells = []
        for column in table.columns:
            value = reported_value(reported, column)
            title = (f"{column.label}: {value:.4f} as reported by {reported.source.label} (no spread published)"
                     if value is not None else "not reported")
            text = number(value) if value is not None else "—"
            cells.append({"text": text, "mean": text, "std": "", "kind": column.kind, "title": title,
                          "value": sort_value(value)})
        rows.append({"model": reported.model, "setting": reported.setting, "source": reported.source.label,
                     "cells": cells})
    return rows


def csv_name(board: Board, track: str) -> str:
    return f"{board.slug}-{track}.csv"


def table_view(table: Table) -> dict[str, Any]:
    sources = {row.source.id: row.source for row in table.reported}
    return {"track": table.track, "title": TRACK_TITLES.get(table.track, table.track),
            "columns": table.columns, "rows": [row_view(row, table.columns) for row in table.rows],
            "groups": column_groups(table.columns), "probes": any(c.kind == "probe" for c in table.columns),
            "reported": reported_view(table), "sources": [sources[key] for key in sorted(sources)],
            "csv": csv_name(table.board, table.track)}
