"""Track tables: one row per group with a mean/std/CI cell per column, the best value per column, and the groups that
are not significantly worse than the best (ties).

Reported rows (numbers copied from elsewhere) are attached to a table but never take part in best or tie marks, and
neither do rows with a run that kept no per-sample predictions for the track: their metrics could not be checked
against predictions when the files were read (`intake`), so a file claiming any number it likes cannot take a mark.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mer_bench.metrics import MAIN_METRIC
from mer_bench.stats import Summary, TestOutcome, summarize

from mer_bench.leaderboard.boards import TRACK_OUTPUTS, Board, Group
from mer_bench.leaderboard.columns import Column, column_value, has_probes, track_columns
from mer_bench.leaderboard.paired import compare
from mer_bench.leaderboard.reported import ReportedRow

ALPHA = 0.05              # significance level of the tie tests; a tie means "p >= ALPHA against the best"
_SAME = 1e-12             # means closer than this are equal (both best)


@dataclass
class Cell:
    summary: Summary
    mark: str = ""                       # "best", "tied" or ""
    test: TestOutcome | None = None      # the comparison with the best row, when one was made
    unverified: bool = False             # not ranked: a run of the row kept no predictions to check its metrics


@dataclass
class Row:
    group: Group
    cells: dict[str, Cell]               # by column id
    seeds: list[int]                     # seeds with this track's results
    verified: bool = True                # every run kept the track's per-sample predictions (checked on reading)


@dataclass
class Table:
    board: Board
    track: str
    columns: list[Column]
    rows: list[Row]
    reported: list[ReportedRow] = field(default_factory=list)

    @property
    def main_column(self) -> Column:
        return next(column for column in self.columns if column.id == MAIN_METRIC)


def build_table(board: Board, track: str, reported: list[ReportedRow]) -> Table:
    groups = [(group, runs) for group in board.groups if (runs := group.runs_with(track))]
    columns = track_columns(track, board.style, board.subsets,
                            has_probes([run for _, runs in groups for run in runs], track))
    rows = [Row(group, {column.id: Cell(summarize([column_value(run, track, column) for run in runs]))
                        for column in columns}, [run.spec.seed for run in runs],
                all(TRACK_OUTPUTS[track] in run.predictions for run in runs)) for group, runs in groups]
    table = Table(board, track, columns, rows, reported)
    table.rows.sort(key=lambda row: _rank_key(row, table.main_column))
    for column in columns:
        if column.ranked:
            mark_column(table, column)
    return table


def _rank_key(row: Row, column: Column) -> tuple:
    """Best main metric first; rows without a value last; the group key breaks ties, so the order is stable."""
    mean = row.cells[column.id].summary.mean
    signed = None if mean is None else (-mean if column.higher_is_better else mean)
    return (signed is None, signed if signed is not None else 0.0, row.group.key.sort_key())


def best_rows(rows: list[Row], column: Column) -> list[Row]:
    """Verified rows whose mean is the best of the column (several when equal)."""
    scored = [row for row in rows if row.verified and row.cells[column.id].summary.mean is not None]
    if not scored:
        return []
    pick = max if column.higher_is_better else min
    best = pick(row.cells[column.id].summary.mean for row in scored)
    return [row for row in scored if abs(row.cells[column.id].summary.mean - best) <= _SAME]


def mark_column(table: Table, column: Column) -> None:
    """Mark the best rows, then test each other row against the first best one and mark it tied when the test does
    not reject equality at `ALPHA`. Unverified rows are neither marked nor tested."""
    for row in table.rows:
        row.cells[column.id].unverified = not row.verified
    best = best_rows(table.rows, column)
    if not best:
        return
    for row in best:
        row.cells[column.id].mark = "best"
    reference = best[0]
    for row in table.rows:
        cell = row.cells[column.id]
        if cell.mark or cell.unverified or cell.summary.mean is None:
            continue
        cell.test = compare(reference.group, row.group, table.track, table.board.style, column)
        if cell.test is not None and cell.test.p_value >= ALPHA:
            cell.mark = "tied"


def build_tables(board: Board, reported: dict[str, list[ReportedRow]]) -> list[Table]:
    """One table per track the board's results have, in the standard track order."""
    return [build_table(board, track, reported.get(track, [])) for track in board.tracks()]
