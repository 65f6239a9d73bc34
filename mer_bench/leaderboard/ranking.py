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
from mer_bench.leaderboard.columns import Column, column_value, comparison_columns, has_probes, track_columns
from mer_bench.leaderboard.paired import compare
from mer_bench.leaderboard.reported import ReportedRow
from mer_bench.leaderboard.shared import COMPARISON

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
    track: str = ""                      # the track whose output the row's cells come from

    @property
    def output(self) -> str:
        """What the row's numbers are computed from, for a reader: the score or the probabilities."""
        return {"regression": "score", "classification": "probabilities"}.get(self.track, self.track)


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


def make_row(group: Group, track: str, columns: list[Column]) -> Row:
    runs = group.runs_with(track)
    cells = {column.id: Cell(summarize([column_value(run, track, column) for run in runs])) for column in columns}
    return Row(group, cells, [run.spec.seed for run in runs],
               all(TRACK_OUTPUTS[track] in run.predictions for run in runs), track)


def ranked_table(board: Board, track: str, columns: list[Column], rows: list[Row],
                 reported: list[ReportedRow] = ()) -> Table:
    table = Table(board, track, columns, rows, list(reported))
    table.rows.sort(key=lambda row: _rank_key(row, table.main_column))
    for column in columns:
        if column.ranked:
            mark_column(table, column)
    return table


def build_table(board: Board, track: str, reported: list[ReportedRow]) -> Table:
    groups = [(group, runs) for group in board.groups if (runs := group.runs_with(track))]
    columns = track_columns(track, board.style, board.subsets,
                            has_probes([run for _, runs in groups for run in runs], track))
    return ranked_table(board, track, columns, [make_row(group, track, columns) for group, _ in groups], reported)


def build_comparison(board: Board) -> Table:
    """The main table: every group on every track it has (a model with both outputs gets a row per output),
    ranked together on the metrics both tracks define the same way (`leaderboard.shared`)."""
    columns = comparison_columns(board.style, board.subsets)
    rows = [make_row(group, track, columns) for track in board.tracks() for group in board.groups
            if group.runs_with(track)]
    return ranked_table(board, COMPARISON, columns, rows)


def _rank_key(row: Row, column: Column) -> tuple:
    """Best main metric first; rows without a value last; the group key (then the track) breaks ties, so the order
    is stable."""
    mean = row.cells[column.id].summary.mean
    signed = None if mean is None else (-mean if column.higher_is_better else mean)
    return (signed is None, signed if signed is not None else 0.0, row.group.key.sort_key(), row.group.slug,
            row.track)


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
        cell.test = compare(reference.group, row.group, reference.track, table.board.style, column, row.track)
        if cell.test is not None and cell.test.p_value >= ALPHA:
            cell.mark = "tied"


def build_tables(board: Board, reported: dict[str, list[ReportedRow]]) -> list[Table]:
    """The main table across tracks, then one table per track the board's results have, in the standard order."""
    return [build_comparison(board), *(build_table(board, track, reported.get(track, [])) for track in board.tracks())]
