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
def build_command(results: tuple[Path, ...], out: Path) -> None:
    """Build a static site from RESULTS (result files or folders of them) into --out.

    One page per dataset file with a table per track (mean ± sample std over seeds, 95% CI, best and tied marks),
    one page per model setting with every run and the command that reproduces it, results.json and a CSV per table.
    Unreadable or invalid result files are reported by name and skipped. The output depends only on the result
    files, so rebuilding from the same files reproduces the site byte for byte.
    """
    from mer_bench.leaderboard import build_site   # imported here: other commands need not load Jinja2 or SciPy

    report = build_site(results, out)
    for problem in report.skipped:
        print_error(f"Skipped: {problem}")
    if report.duplicates:
        print_error(f"Warning: {report.duplicates} duplicate result file(s) (same run id and data file) ignored; "
                    "the newest of each was used.")
    boards = ", ".join(f"{board.slug} ({len(board.groups)} model setting(s), {len(board.runs)} runs)"
                       for board, _ in report.boards)
    stdout.print(f"Read {report.results + len(report.skipped)} result file(s): {report.results} used, "
                 f"{len(report.skipped)} skipped.", markup=False, soft_wrap=True)
    stdout.print(f"Built {len(report.boards)} board(s): {boards}.", markup=False, soft_wrap=True)
    stdout.print(f"Site: {out / 'index.html'} ({len(report.files)} files)", markup=False, soft_wrap=True)
