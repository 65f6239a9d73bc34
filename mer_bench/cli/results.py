"""`mer-bench results show | compare`: the test metrics of finished runs, read from their result files.

The work is in mer_bench.results_table (imported when a command runs: it loads the leaderboard's checks and SciPy).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from mer_bench.cli.console import print_error
from mer_bench.cli.console import stdout as console

TRACKS = ("regression", "classification")
paths_argument = click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
dataset_option = click.option("--dataset", "-d", help="Only this dataset.")
track_option = click.option("--track", type=click.Choice(TRACKS), help="Only this track.")


@click.group("results")
def results_group() -> None:
    """Test metrics of finished runs, from their result files (as the leaderboards compute them)."""


@results_group.command("show")
@paths_argument
@click.option("--model", "-m", help="Only this model.")
@dataset_option
@track_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one record per row and track).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (one line per row and track).")
def show_command(paths: tuple[Path, ...], model: str | None, dataset: str | None, track: str | None,
                 as_json: bool, as_csv: bool) -> None:
    """Test metrics per dataset file, track and configuration: mean ± sample std over seeds, the whole test split's
    metrics then the main metric on each test subset. PATHS are result files or folders (default: results/)."""
    from mer_bench import results_table

    if as_json and as_csv:
        raise click.UsageError("Give --json or --csv, not both.")
    loaded = _load(paths)
    tables = results_table.track_tables(loaded, model, dataset, track)
    results_table.refuse_empty(loaded, tables, _filters(model=model, dataset=dataset, track=track) or "the files")
    if as_json:
        click.echo(json.dumps([results_table.row_record(table, row) for table in tables for row in table.rows],
                              indent=1))
    elif as_csv:
        click.echo(results_table.tables_csv(tables), nl=False)
    else:
        for table in tables:
            console.print(_show_table(table))


@results_group.command("compare")
@click.argument("first", metavar="A")
@click.argument("second", metavar="B")
@paths_argument
@dataset_option
@track_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def compare_command(first: str, second: str, paths: tuple[Path, ...], dataset: str | None, track: str | None,
                    as_json: bool) -> None:
    """Compare A and B side by side on every dataset file and track both have: mean ± std over seeds per metric, the
    difference A - B and the p-value of the paired test the leaderboards use (a permutation test on the per-sample
    test predictions of matched seeds, else a paired t-test over seeds). A and B are model names or, for a model
    with several configurations, row ids as `results show` lists them. PATHS default to results/."""
    from mer_bench import results_table

    loaded = _load(paths)
    found = results_table.comparisons(loaded, first, second, dataset, track)
    filters = _filters(dataset=dataset, track=track)
    results_table.refuse_empty(loaded, found, f"both '{first}' and '{second}' on one track of one dataset file"
                               + (f" ({filters})" if filters else ""))
    if as_json:
        click.echo(json.dumps([results_table.comparison_record(item) for item in found], indent=1))
        return
    for item in found:
        console.print(_comparison_table(item))


def _load(paths: tuple[Path, ...]):
    from mer_bench import results_table
    from mer_bench.errors import UserError

    if not paths:
        if not Path("results").is_dir():
            raise UserError("No PATHS given and no results/ folder here; name result files or folders.")
        paths = (Path("results"),)
    loaded = results_table.load(paths)
    for problem in loaded.problems:
        print_error(f"Skipped: {problem}")
    return loaded


def _filters(**chosen: str | None) -> str:
    return " ".join(f"--{name} {value}" for name, value in chosen.items() if value is not None)


def _board_title(board, track: str) -> str:
    synthetic = " (synthetic)" if board.synthetic else ""
    return (f"{board.title}{synthetic}, data {board.sha256[:8]}: test, {track} track, "
            f"{board.style.upper()}-style, mean ± std over seeds")


def _show_table(table):
    from rich.table import Table

    from mer_bench.leaderboard.views import mean_std_text

    shown = Table("row", "settings", "seeds", *(column.label for column in table.columns),
                  title=_board_title(table.board, table.track))
    for row in table.rows:
        key = row.group.key
        shown.add_row(row.group.slug, key.settings_text(), str(len(row.seeds)),
                      *(mean_std_text(row.cells[column.id].summary.mean, row.cells[column.id].summary.std)
                        for column in table.columns))
    return shown


def _comparison_table(found):
    from rich.table import Table

    from mer_bench.leaderboard.views import mean_std_text

    shown = Table("metric", f"A: {found.first.slug}", f"B: {found.second.slug}", "A - B", "p", "test",
                  title=_board_title(found.board, found.track))
    for item in found.columns:
        arrow = "↑" if item.column.higher_is_better else "↓"
        test = item.test
        shown.add_row(f"{item.column.label} {arrow}", mean_std_text(item.first.mean, item.first.std),
                      mean_std_text(item.second.mean, item.second.std),
                      "n/a" if test is None else f"{test.difference:+.4f}",
                      "n/a" if test is None else f"{test.p_value:.4f}",
                      "no matched seeds" if test is None else f"{test.method}, {test.seeds} seed(s)")
    return shown
