"""`mer-bench leaderboard` commands."""

from __future__ import annotations

from pathlib import Path

import click

from mer_bench.cli.console import print_error, stdout


@click.group("leaderboard")
def leaderboard_group() -> None:
    """Static HTML leaderboards built from result files."""


@leaderboard_group.command("build")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the site (created; a folder from an earlier build is updated in place).")
@click.option("--selections", "selections", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Selection files or folders of them, from `mer-bench sweep select` (repeatable). Default: the "
                   "<results>-selections folder beside each RESULTS folder, where there is one.")
@click.option("--no-selections", is_flag=True, help="Read no selection files: no row is marked tuned.")
@click.option("--tuned-only/--all-candidates", "tuned_only", default=True, show_default=True,
              help="Leave out (the default) or show the rows of configurations a selection considered but did not "
                   "choose; their validation numbers are on the selection's evidence page either way.")
def build_command(results: tuple[Path, ...], out: Path, selections: tuple[Path, ...], no_selections: bool,
                  tuned_only: bool) -> None:
    """Build a static site from RESULTS (result files or folders of them) into --out.

    One page per dataset file: a main table ranking every model across tracks on the metrics both define the same
    way (with the test subsets), then a table per track (mean ± sample std over seeds, 95% CI, best and tied marks),
    figures of robustness and modality reliance,
    one page per model setting with every run and the command that reproduces it, results.json and a CSV per table.
    A configuration chosen by `mer-bench sweep select` is marked "tuned on validation" and linked to a page with its
    selection evidence. Unreadable or invalid result and selection files are reported by name and skipped. The
    output depends only on those files, so rebuilding from the same files reproduces the site byte for byte.
    """
    from mer_bench.leaderboard import build_site   # imported here: other commands need not load Jinja2 or SciPy
    from mer_bench.leaderboard.intake import one_line

    report = build_site(results, out, list(selections) or None, tuned_only=tuned_only,
                        ignore_selections=no_selections)
    for problem in report.skipped:
        print_error(f"Skipped: {one_line(str(problem))}")
    for problem in report.skipped_selections:
        print_error(f"Skipped selection: {one_line(str(problem))}")
    if report.duplicates:
        print_error(f"Warning: {report.duplicates} duplicate result file(s) (same run id and data file) ignored; "
                    "the newest of each was used.")
    boards = ", ".join(f"{board.slug} ({len(board.groups)} model setting(s), {len(board.runs)} runs)"
                       for board, _ in report.boards)
    stdout.print(f"Read {report.results + len(report.skipped)} result file(s): {report.results} used, "
                 f"{len(report.skipped)} skipped.", markup=False, soft_wrap=True)
    if report.selections_read or report.selection_folders:
        _print_selections(report)
    stdout.print(f"Built {len(report.boards)} board(s): {boards}.", markup=False, soft_wrap=True)
    stdout.print(f"Site: {out / 'index.html'} ({len(report.files)} files)", markup=False, soft_wrap=True)


def _print_selections(report) -> None:
    folders = ", ".join(map(str, report.selection_folders))
    where = f" (looked in {folders} and among the results)" if folders else " (found among the results)"
    stdout.print(f"Read {report.selections_read} selection file(s){where}: {len(report.tuned)} tuned row(s) shown, "
                 f"{len(report.skipped_selections)} skipped.", markup=False, soft_wrap=True)
    if report.hidden:
        stdout.print(f"Left out {report.hidden} row(s) of configurations a selection did not choose "
                     "(--all-candidates shows them).", markup=False, soft_wrap=True)


@leaderboard_group.command("check")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--board", "board", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The published results folder the files would join (e.g. leaderboards/results): duplicates and "
                   "conflicts are looked for there too, and its -selections folder counts for tuned rows.")
def check_command(results: tuple[Path, ...], board: Path | None) -> None:
    """Check result files (and their selection files) submitted to join a board.

    Every check a build makes (schema, plain names, ranges, metrics recomputed from the stored predictions), plus:
    complete provenance (command, versions, commit), the data file's checksum against the published one for the
    standard datasets, non-default settings only with the selection file that tuned them on validation, and no
    duplicate or conflicting runs. Prints one line per problem naming the file and field; exit status 2 when there
    is any.
    """
    from mer_bench.leaderboard.check import check_files

    report = check_files(results, board)
    for problem in report.problems:
        print_error(problem)
    if report.problems:
        raise click.exceptions.Exit(2)
    stdout.print(f"Checked {report.files} file(s): no problems.", markup=False, soft_wrap=True)
