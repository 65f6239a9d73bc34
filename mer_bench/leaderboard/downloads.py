"""Machine-readable downloads next to the pages: results.json (per board and for the whole site) and one CSV per table.

Numbers are rounded (metrics to 6 decimals, p-values to 4) so the files are stable across platforms whose floating
point differs in the last bits, which keeps a rebuilt site byte-identical.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from typing import Any

from mer_bench.stats import CONFIDENCE, PERMUTATIONS

from mer_bench.leaderboard.boards import Board
from mer_bench.leaderboard.columns import reported_value
from mer_bench.leaderboard.ranking import ALPHA, Cell, Table
from mer_bench.leaderboard.selections import Tuned

FORMAT_VERSION = 1
CELL_FIELDS = ("mean", "std", "n", "ci_low", "ci_high", "mark", "test", "p_value")


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


def cell_record(cell: Cell) -> dict[str, Any]:
    summary = cell.summary
    return {"mean": _round(summary.mean), "std": _round(summary.std), "n": summary.n,
            "ci_low": _round(summary.ci_low), "ci_high": _round(summary.ci_high), "mark": cell.mark or None,
            "test": cell.test.method if cell.test else None,
            "p_value": _round(cell.test.p_value, 4) if cell.test else None}


def table_record(table: Table) -> dict[str, Any]:
    return {
        "track": table.track,
        "columns": [{"id": column.id, "label": column.label, "description": column.description,
                     "higher_is_better": column.higher_is_better} for column in table.columns],
        "rows": [{"model": row.group.key.model, "track": row.track, "settings": row.group.key.settings_text(),
                  "overrides": json.loads(row.group.key.overrides), "text_mode": row.group.key.text_mode,
                  "epochs": row.group.key.epochs, "seeds": row.seeds, "page": row.group.page,
                  "run_ids": [run.run_id for run in row.group.runs_with(row.track)],
                  "tuned": bool(row.group.tuned), "selections": [item.page for item in row.group.tuned],
                  "cells": {column.id: cell_record(row.cells[column.id]) for column in table.columns}}
                 for row in table.rows],
        "reported": [{"model": row.model, "setting": row.setting, "source": row.source.id,
                      "values": {key: _round(value) for key, value in row.values.items()}}
                     for row in table.reported],
    }


def board_record(board: Board, tables: list[Table]) -> dict[str, Any]:
    sources = {row.source.id: row.source for table in tables for row in table.reported}
    return {
        "dataset": board.dataset, "title": board.title, "synthetic": board.synthetic, "style": board.style,
        "sha256": board.sha256, "page": f"{board.slug}/index.html", "sizes": board.record.get("sizes"),
        "subsets": board.record.get("subsets"), "last_update": board.last_update, "runs": len(board.runs),
        "tables": [table_record(table) for table in tables],
        "selections": [evidence_record(item) for group in board.groups for item in group.tuned],
        "hidden_candidates": board.hidden_candidates,
        "reported_sources": [{"id": key, "citation": sources[key].citation, "url": sources[key].url,
                              "notes": sources[key].notes} for key in sorted(sources)],
    }


def evidence_record(item: Tuned) -> dict[str, Any]:
    """A selection's evidence as data: the criterion, the chosen configuration and every candidate's validation
    summary, best first. No candidate's test metrics (the tuned row's own cells carry the chosen one's)."""
    selection, chosen = item.selection, item.selection.selected

    def rounded(summary: dict[str, Any]) -> dict[str, Any]:
        return {"mean": _round(summary["mean"]), "std": _round(summary["std"]), "n": summary["n"]}

    return {
        "model": selection.model, "page": item.page, "row_page": item.group.page,
        "created": selection.data.get("created"), "criterion": selection.criterion,
        "selected": {"config_id": chosen["config_id"], "overrides": chosen["overrides"],
                     "text_mode": chosen["text_mode"], "epochs": chosen["epochs"], "valid": rounded(chosen["valid"]),
                     "run_ids": chosen["run_ids"]},
        "candidates": [{"config_id": candidate["config_id"], "overrides": candidate["overrides"],
                        "settings": selection.key_of(candidate["overrides"]).settings_text(),
                        "valid": rounded(candidate["valid"]), "seeds_done": candidate["seeds_done"],
                        "seeds_planned": candidate["seeds_planned"], "complete": candidate["complete"],
                        "competed": selection.competed(candidate)} for candidate in selection.ranked_candidates()],
    }


def statistics_record() -> dict[str, Any]:
    return {"cell": "mean and sample standard deviation (ddof=1) over seeds",
            "confidence_interval": f"{CONFIDENCE:.0%} Student t interval, n - 1 degrees of freedom",
            "ties": f"two-sided paired permutation test on per-sample test predictions pooled over matched seeds "
                    f"({PERMUTATIONS} random swaps), or a two-sided paired t-test over matched seeds when the "
                    f"predictions cannot be paired sample by sample; rows without predictions are not ranked; tied "
                    f"when p >= alpha", "alpha": ALPHA}


def results_json(boards: list[tuple[Board, list[Table]]]) -> str:
    data = {"format": "mer-bench leaderboard", "version": FORMAT_VERSION, "statistics": statistics_record(),
            "boards": [board_record(board, tables) for board, tables in boards]}
    return json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def table_csv(table: Table) -> str:
    """One row per reproduced group then per reported row; per column: mean, std, n, CI, mark, test and p-value.
    `tuned` is "yes" on a row a selection chose on validation; `selection` names its evidence page(s)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["kind", "model", "track", "settings", "text_mode", "epochs", "seeds", "source", "tuned", "selection"]
    header += [f"{column.id}_{field}" for column in table.columns for field in CELL_FIELDS]
    writer.writerow(header)
    for row in table.rows:
        key = row.group.key
        line = ["reproduced", *map(spreadsheet_text, (key.model, row.track, key.settings_text(), key.text_mode)),
                _blank(key.epochs), " ".join(map(str, row.seeds)), "", "yes" if row.group.tuned else "",
                spreadsheet_text(" ".join(item.page for item in row.group.tuned))]
        for column in table.columns:
            record = cell_record(row.cells[column.id])
            line += [_blank(record[field]) for field in CELL_FIELDS]
        writer.writerow(line)
    for reported in table.reported:
        line = ["reported", *map(spreadsheet_text, (reported.model, table.track, reported.setting)), "", "", "",
                spreadsheet_text(reported.source.id), "", ""]
        for column in table.columns:
            value = reported_value(reported, column)
            line += [_blank(_round(value))] + [""] * (len(CELL_FIELDS) - 1)
        writer.writerow(line)
    return buffer.getvalue()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")   # what makes a spreadsheet read a cell as a formula


def spreadsheet_text(text: str) -> str:
    """A text cell that a spreadsheet shows as text: one starting like a formula gets a leading apostrophe (the
    usual defence against CSV formula injection), and control characters are written as escapes (the csv module
    leaves a lone carriage return unquoted, which splits the row for most readers). Only text cells pass through
    here; numbers, negative ones included, are written as they are."""
    visible = "".join(ascii(char)[1:-1] if unicodedata.category(char) == "Cc" else char for char in text)
    return f"'{visible}" if text.startswith(FORMULA_STARTS) else visible


def _blank(value: Any) -> str:
    return "" if value is None else str(value)
