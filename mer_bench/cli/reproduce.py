"""`mer-bench reproduce`: rerun a result file's recorded run and compare its numbers with the recorded ones."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mer_bench.cli.console import stdout as console

if TYPE_CHECKING:
    from mer_bench.reproduce import Reproduction

SHOWN_PER_PART = 5   # largest differences listed per part (metrics, predictions, probes) in the text report


@click.command("reproduce")
@click.argument("result_file", type=click.Path(path_type=Path))
@click.option("--data-dir", type=click.Path(path_type=Path), help="Folder holding the datasets in the MMSA layout.")
@click.option("--data-file", type=click.Path(path_type=Path), help="The dataset's pickle file itself.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Folder for the rerun's result file (default: a temporary folder, removed afterwards). Never the "
                   "folder holding RESULT_FILE.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def reproduce_command(ctx: click.Context, result_file: Path, data_dir: Path | None, data_file: Path | None,
                      out_dir: Path | None, as_json: bool) -> None:
    """Rerun RESULT_FILE's recorded spec with its recorded torch threads, device and data (checked by checksum),
    then compare per-sample predictions, metrics and probes with the recorded ones.

    Exit status 0: reproduced exactly or within float noise; 1: DIFFERENT; 2: the run cannot be redone here."""
    from mer_bench.cli.progress import make_progress
    from mer_bench.reproduce import prepare, rerun_and_compare   # torch and the models: only when a command runs

    rerun = prepare(result_file, out_dir, data_dir, data_file)   # refusals first: one line, no progress bar
    with make_progress([rerun.original.spec]) as progress:
        progress.start_run(rerun.original.spec)
        found = rerun_and_compare(rerun, progress)
    if as_json:
        click.echo(json.dumps(found.to_json_dict(), indent=1, default=str))
    else:
        print_report(found)
    ctx.exit(found.exit_status)


def verdict_line(found: Reproduction) -> str:
    comparison = found.comparison
    if found.verdict == "exact":
        return f"reproduced exactly: {found.run_id} ({comparison.compared} values compared, all bit for bit)"
    if found.verdict == "float-noise":
        return (f"reproduced within float noise (max |diff| = {comparison.max_abs_diff:.3g}): {found.run_id} "
                f"({len(comparison.differences)} of {comparison.compared} values differ in the last bits)")
    size = comparison.max_abs_diff
    largest = "(a value is missing or changed kind)" if math.isinf(size) else f"{size:.4g}"
    return (f"DIFFERENT: {found.run_id}: {len(comparison.differences)} of {comparison.compared} values differ, "
            f"max |diff| = {largest}")


def print_report(found: Reproduction) -> None:
    """The verdict first (one line), then what changed: largest differences, environment, notes."""
    console.print(verdict_line(found), markup=False, highlight=False, soft_wrap=True)
    if found.verdict == "different":
        for part in ("metrics/", "predictions/", "probes/", "parameters"):
            for difference in found.comparison.largest(part, SHOWN_PER_PART):
                console.print(f"  {difference.describe()}", markup=False, highlight=False, soft_wrap=True)
    changes = found.environment_changes()
    commits = changes.get("git_commit", (found.recorded_environment.get("git_commit"),) * 2)
    console.print(f"recorded at commit {commits[0]}, rerun at {commits[1]}", markup=False, highlight=False)
    for key, (old, new) in changes.items():
        if key != "git_commit":
            console.print(f"  environment {key}: recorded {old}, now {new}", markup=False, highlight=False,
                          soft_wrap=True)
    for note in found.notes:
        console.print(f"  {note}", markup=False, highlight=False, soft_wrap=True)
    if found.rerun is not None:
        console.print(f"rerun written to {found.rerun}", markup=False, highlight=False, soft_wrap=True)

