"""Tables of finished runs, read from result files: what `mer-bench results show` and `results compare` print.

The numbers are the leaderboard's own: files are read and checked by `leaderboard.intake` (a file that fails a check
is skipped with one line naming it), grouped into boards (one per dataset file) and rows (one per configuration,
one run per seed) by `leaderboard.boards`, summarised per column by `leaderboard.ranking.make_row` and compared
with `leaderboard.paired.compare`, the paired test behind the boards' tie marks. So a table here and a board built
from the same files always agree.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mer_bench.errors import UserError
from mer_bench.leaderboard.boards import Board, Group, deduplicate, make_boards
from mer_bench.leaderboard.columns import Column, track_columns
from mer_bench.leaderboard.downloads import cell_record, spreadsheet_text
from mer_bench.leaderboard.intake import one_line, read_inputs
from mer_bench.leaderboard.paired import compare
from mer_bench.leaderboard.ranking import Cell, Row, make_row
from mer_bench.stats import Summary, TestOutcome


@dataclass
class Loaded:
    """Boards built from result files, and what was left out on the way."""

    boards: list[Board]
    problems: list[str] = field(default_factory=list)   # one line per skipped file
    duplicates: int = 0                                  # same run id and data file read twice (the newest kept)


@dataclass(frozen=True)
class TrackTable:
    """One dataset file's rows on one track: test metrics on the whole split, then the main metric per subset."""

    board: Board
    track: str
    columns: list[Column]
    rows: list[Row]


@dataclass(frozen=True)
class ColumnComparison:
    column: Column
    first: Summary
    second: Summary
    test: TestOutcome | None      # None when the two rows share no seed


@dataclass(frozen=True)
class Comparison:
    board: Board
    track: str
    first: Group
    second: Group
    columns: list[ColumnComparison]


def load(paths: Iterable[Path]) -> Loaded:
    """Every result file under `paths`, checked as a leaderboard build checks it; selection files are ignored."""
    inputs = read_inputs(paths, [])
    results, duplicates = deduplicate(inputs.results)
    problems = [one_line(str(problem)) for problem in inputs.result_problems]
    return Loaded(make_boards(results), problems, duplicates)


def track_tables(loaded: Loaded, model: str | None = None, dataset: str | None = None,
                 track: str | None = None) -> list[TrackTable]:
    """The tables `results show` prints, filtered by model name, dataset name and track."""
    tables = []
    for board in loaded.boards:
        if dataset is not None and board.dataset != dataset:
            continue
        for name in board.tracks():
            if track is not None and name != track:
                continue
            groups = [group for group in board.groups if group.runs_with(name)
                      and (model is None or group.key.model == model)]
            if groups:
                columns = track_columns(name, board.style, board.subsets, with_probes=False)
                tables.append(TrackTable(board, name, columns, [make_row(group, name, columns) for group in groups]))
    return tables


def refuse_empty(loaded: Loaded, found: list, what: str) -> None:
    """No table to show: say why in one line (nothing readable, or nothing that passes the filters)."""
    if found:
        return
    if not loaded.boards:
        raise UserError(f"No usable result files ({len(loaded.problems)} skipped).")
    models = sorted({group.key.model for board in loaded.boards for group in board.groups})
    datasets = sorted({board.dataset for board in loaded.boards})
    raise UserError(f"No results match {what}; models: {', '.join(models)}; datasets: {', '.join(datasets)}.")


def find_row(board: Board, name: str) -> Group | None:
    """The row `name` picks on a board: a row id (as `results show` lists them) or a model with one configuration
    there. A model with several configurations is refused, listing their row ids."""
    by_id = [group for group in board.groups if group.slug == name]
    if by_id:
        return by_id[0]
    by_model = [group for group in board.groups if group.key.model == name]
    if len(by_model) > 1:
        choices = ", ".join(f"{group.slug} ({group.key.settings_text()})" for group in by_model)
        raise UserError(f"'{name}' has {len(by_model)} configurations on {board.dataset} ({board.sha256[:8]}); "
                        f"name one by its row id: {choices}.")
    return by_model[0] if by_model else None


def comparisons(loaded: Loaded, first: str, second: str, dataset: str | None = None,
                track: str | None = None) -> list[Comparison]:
    """`first` against `second` on every board and track both have, column by column, with the boards' test."""
    found = []
    for board in loaded.boards:
        if dataset is not None and board.dataset != dataset:
            continue
        a, b = find_row(board, first), find_row(board, second)
        if a is None or b is None:
            continue
        for name in board.tracks():
            if (track is None or name == track) and a.runs_with(name) and b.runs_with(name):
                found.append(_compare_on(board, name, a, b))
    return found


def _compare_on(board: Board, track: str, first: Group, second: Group) -> Comparison:
    columns = [column for column in track_columns(track, board.style, board.subsets, with_probes=False)
               if column.ranked]
    one, other = make_row(first, track, columns), make_row(second, track, columns)
    compared = [ColumnComparison(column, one.cells[column.id].summary, other.cells[column.id].summary,
                                 compare(first, second, track, board.style, column)) for column in columns]
    return Comparison(board, track, first, second, compared)


# ---- machine-readable forms ----------------------------------------------------------------------------------------

def row_record(table: TrackTable, row: Row) -> dict[str, Any]:
    key = row.group.key
    return {"dataset": table.board.dataset, "sha256": table.board.sha256, "synthetic": table.board.synthetic,
            "style": table.board.style, "track": table.track, "model": key.model, "row": row.group.slug,
            "settings": key.settings_text(), "seeds": row.seeds,
            "run_ids": [run.run_id for run in row.group.runs_with(table.track)],
            "cells": {column.id: _summary_record(row.cells[column.id].summary) for column in table.columns}}


def comparison_record(found: Comparison) -> dict[str, Any]:
    return {"dataset": found.board.dataset, "sha256": found.board.sha256, "track": found.track,
            "first": found.first.slug, "second": found.second.slug,
            "columns": [{"column": item.column.id, "label": item.column.label,
                         "higher_is_better": item.column.higher_is_better,
                         "first": _summary_record(item.first), "second": _summary_record(item.second),
                         "test": None if item.test is None else {
                             "method": item.test.method, "difference": item.test.difference,
                             "p_value": item.test.p_value, "seeds": item.test.seeds}}
                        for item in found.columns]}


def _summary_record(summary: Summary) -> dict[str, Any]:
    """A cell rounded as the board rounds it (six decimals), so this JSON and the board's results.json read alike."""
    record = cell_record(Cell(summary))
    return {name: record[name] for name in ("mean", "std", "n", "ci_low", "ci_high")}


def tables_csv(tables: list[TrackTable]) -> str:
    """One line per row and track; per column its mean, std and n (blank where a column does not apply)."""
    columns: list[str] = []
    for table in tables:
        columns += [column.id for column in table.columns if column.id not in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["dataset", "sha256", "track", "model", "row", "settings", "seeds",
                     *(f"{column}_{part}" for column in columns for part in ("mean", "std", "n"))])
    for table in tables:
        for row in table.rows:
            record = row_record(table, row)
            line = [*map(spreadsheet_text, (record["dataset"], record["sha256"], record["track"], record["model"],
                                            record["row"], record["settings"])),
                    " ".join(map(str, record["seeds"]))]
            for column in columns:
                cell = record["cells"].get(column) or {}
                line += ["" if cell.get(part) is None else str(cell[part]) for part in ("mean", "std", "n")]
            writer.writerow(line)
    return buffer.getvalue()
