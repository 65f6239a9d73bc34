"""The work of `mer-bench sweep plan|run|select` (cli/sweep.py declares the commands and their options)."""

from __future__ import annotations

import json
import shlex
from collections import Counter
from pathlib import Path

from rich.table import Table

from mer_bench.cli.console import stderr as status_console
from mer_bench.cli.console import stdout as console
from mer_bench.cli.run import parse_settings
from mer_bench.cli.sweep import RUNS_LISTED_BY_DEFAULT
from mer_bench.errors import EnvironmentProblem, UserError
from mer_bench.fileio import check_output_dir
from mer_bench.metrics import METRIC_KEYS, METRICS
from mer_bench.plugins import get_catalog
from mer_bench.runspec import RunSpec
from mer_bench.sweep.grid import SweepGrid, load_grid
from mer_bench.sweep.local import LocalLayout, run_local
from mer_bench.sweep.select import Criterion, Selection, config_key, select, summarise_test, write_selection
from mer_bench.sweep.slurm import SlurmOptions, check_slurm, submit, wait_for
from mer_bench.sweep.store import RunState, estimate_remaining, read_failure, scan
from mer_bench.sweep.view import SweepView, format_seconds
from mer_bench.sweep.worker import FAILED, LOCKED, UNAVAILABLE, WorkerSettings
from mer_bench.training import resolve_device

MAX_FAILURES_SHOWN = 10


class RunsFailed(UserError):
    """Some runs of the sweep failed: exit status 1, as a test suite with failures, not 2 (a usage error)."""

    exit_code = 1


def plan_sweep(grid_file: Path, results: Path | None, jobs: int | None, list_runs: bool, as_json: bool) -> None:
    """The work of `mer-bench sweep plan` (options documented in cli/sweep.py)."""
    grid = load_grid(grid_file, get_catalog(), results)
    states = scan(grid.specs, grid.results)
    estimate = estimate_remaining(states, grid.results)
    layout = LocalLayout.fit(jobs)
    if as_json:
        console.print_json(json.dumps(_plan_record(grid, states, estimate.seconds)))
        return
    configurations = len({config_key(spec) for spec in grid.specs})
    console.print(f"{grid.path}: {len(grid.specs)} runs ({configurations} configuration(s) x seeds); results in "
                  f"{grid.results}", markup=False, highlight=False, soft_wrap=True)
    if grid.description:
        console.print(grid.description, markup=False, highlight=False)
    console.print(_plan_table(states))
    if list_runs or len(states) <= RUNS_LISTED_BY_DEFAULT:
        console.print(_runs_table(states))
    else:
        console.print(f"(`--runs` lists all {len(states)} runs.)")
    _print_failures(states, grid.results)
    if estimate.seconds is None:
        console.print("Remaining time: unknown until a run has finished.")
    elif estimate.seconds:
        console.print(f"Remaining time: about {format_seconds(estimate.seconds)} of run time, "
                      f"{format_seconds(estimate.seconds / layout.jobs)} with {layout.jobs} local job(s) "
                      f"(from {estimate.from_runs} finished run(s)).")


def _plan_record(grid: SweepGrid, states: dict[RunSpec, RunState], estimate: float | None) -> dict:
    counts = Counter(state.value for state in states.values())
    runs = []
    for spec, state in states.items():
        run = {"run_id": spec.run_id, **spec.to_dict(), "state": state.value}
        if state is RunState.FAILED:
            run["error"] = (read_failure(spec, grid.results) or {}).get("error")
        runs.append(run)
    return {"grid_file": str(grid.path), "results": str(grid.results), "runs": len(states),
            "counts": {state.value: counts.get(state.value, 0) for state in RunState},
            "remaining_seconds": estimate, "run_list": runs}


def _plan_table(states: dict[RunSpec, RunState]) -> Table:
    table = Table("model", "dataset", "configurations", "runs", "done", "failed", "running", "remaining")
    groups: dict[tuple[str, str], list[RunSpec]] = {}
    for spec in states:
        groups.setdefault((spec.model, spec.dataset), []).append(spec)
    for (model, dataset), specs in groups.items():
        counts = Counter(states[spec] for spec in specs)
        configurations = len({(s.overrides, s.text_mode, s.epochs) for s in specs})
        table.add_row(model, dataset, str(configurations), str(len(specs)),
                      *(str(counts[state]) for state in RunState))
    return table


def _runs_table(states: dict[RunSpec, RunState]) -> Table:
    table = Table("run id", "state", "settings")
    for spec, state in states.items():
        table.add_row(spec.run_id, state.value, describe_settings(spec))
    return table


def describe_settings(spec: RunSpec) -> str:
    parts = [f"{key}={value}" for key, value in spec.to_dict()["overrides"].items()]
    if spec.text_mode != "features":
        parts.append(f"text_mode={spec.text_mode}")
    if spec.epochs is not None:
        parts.append(f"epochs={spec.epochs}")
    return " ".join(parts) or "(defaults)"


def _print_failures(states: dict[RunSpec, RunState], out_dir: Path) -> None:
    failed = [spec for spec, state in states.items() if state is RunState.FAILED]
    if not failed:
        return
    console.print(f"Failed runs ({len(failed)}; `sweep run` with --retry-failed reruns them; the record with "
                  f"the traceback is .<run-id>.failed.json beside the result):")
    for spec in failed[:MAX_FAILURES_SHOWN]:
        error = (read_failure(spec, out_dir) or {}).get("error") or "?"
        console.print(f"  {spec.run_id}: {error.splitlines()[0]}", markup=False, highlight=False, soft_wrap=True)
    if len(failed) > MAX_FAILURES_SHOWN:
        console.print(f"  ... and {len(failed) - MAX_FAILURES_SHOWN} more (see --runs or --json).")


def run_sweep(grid_file, results, executor, jobs, device, retry_failed, partition, time_limit, gpus, cpus, mem_gb,
                max_parallel, runs_per_job, slurm_folder, slurm_options, no_wait) -> None:
    """The work of `mer-bench sweep run` (options documented in cli/sweep.py)."""
    grid = load_grid(grid_file, get_catalog(), results)
    check_output_dir(grid.results, "sweep's results folder")
    states = scan(grid.specs, grid.results)
    todo = [spec for spec, state in states.items()
            if state is RunState.REMAINING or (retry_failed and state is RunState.FAILED)]
    settings = WorkerSettings(out_dir=grid.results, data_dir=grid.data_dir, device=device, probes=grid.probes,
                              retry_failed=retry_failed)
    if executor == "slurm":
        check_slurm()
        options = SlurmOptions(folder=(slurm_folder or grid.results / ".slurm").resolve(),
                               time_min=parse_minutes(time_limit), partition=partition, gpus=gpus, cpus=cpus,
                               mem_gb=mem_gb, max_parallel=max_parallel, runs_per_job=runs_per_job,
                               extra=parse_settings(slurm_options))
        where = f"Slurm ({options.time_min} min, {cpus} CPU, {gpus} GPU per job)"
    else:
        resolve_device(device)   # "--device cuda" without a GPU fails here, not once per run
        layout = LocalLayout.fit(jobs, device)
        where = layout.describe()
    _print_start(grid, states, todo, retry_failed, where)
    if not todo:
        return
    with SweepView(list(grid.specs), grid.results, status_console) as view:
        if executor == "local":
            outcomes = run_local(todo, settings, layout, on_poll=view.refresh)
        else:
            outcomes = _run_on_slurm(todo, settings, options, view, no_wait, follow_up(grid, results, "plan"))
    if outcomes is not None:
        _finish(grid, outcomes, results)


def follow_up(grid: SweepGrid, results: Path | None, verb: str, *options: str) -> str:
    """A command to run next, with the user's --results kept (else it would look at the grid file's folder)."""
    chosen = ("--results", str(results)) if results is not None else ()
    return shlex.join(["mer-bench", "sweep", verb, str(grid.path), *chosen, *options])


def _run_on_slurm(todo, settings, options, view, no_wait, plan_command):
    submission = submit(todo, settings, options)
    arrays = " ".join(submission.array_ids)
    status_console.print(f"Submitted job array {arrays} ({len(submission.jobs)} job(s)); logs in {options.folder}",
                         markup=False, highlight=False, soft_wrap=True)
    if no_wait:
        status_console.print(f"Not waiting: `{plan_command}` shows progress.", markup=False, highlight=False,
                             soft_wrap=True)
        return None
    try:
        return wait_for(submission, settings, on_poll=view.refresh)
    except KeyboardInterrupt:
        status_console.print(f"The jobs keep running in Slurm: `scancel {arrays}` stops them; "
                             f"`{plan_command}` shows progress.", markup=False, highlight=False, soft_wrap=True)
        raise


def _print_start(grid, states, todo, retry_failed, where) -> None:
    counts = Counter(states.values())
    failed_note = ("" if retry_failed or not counts[RunState.FAILED]
                   else " (skipped; --retry-failed reruns them)")
    status_console.print(
        f"{grid.path}: {len(states)} runs: {counts[RunState.DONE]} done, {counts[RunState.FAILED]} failed"
        f"{failed_note}, {counts[RunState.RUNNING]} running elsewhere; {len(todo)} to run on {where}.",
        markup=False, highlight=False, soft_wrap=True)
    if not todo:
        status_console.print("Nothing to run.")


def _finish(grid: SweepGrid, outcomes: dict[RunSpec, str], results: Path | None) -> None:
    counts = Counter(outcomes.values())
    console.print(f"Sweep finished: {counts['done']} run(s) done, {counts[FAILED]} failed, {counts[LOCKED]} taken "
                  f"by another sweep, {counts['skipped']} already done; results in {grid.results}",
                  markup=False, highlight=False, soft_wrap=True)
    if counts[UNAVAILABLE]:
        raise EnvironmentProblem(f"{counts[UNAVAILABLE]} run(s) could not start where they were sent (data or device "
                                 "missing there; the job logs say which); nothing was recorded for them: "
                                 f"`{follow_up(grid, results, 'run')}` runs them once that is fixed.")
    if counts[FAILED]:
        raise RunsFailed(f"{counts[FAILED]} run(s) failed: `{follow_up(grid, results, 'plan')}` lists them; "
                         f"rerun them with `{follow_up(grid, results, 'run', '--retry-failed')}`.")


def parse_minutes(text: str) -> int:
    """Slurm's time formats we accept: minutes, H:MM:SS (or MM:SS), D-HH:MM:SS."""
    try:
        days, _, clock = text.rpartition("-")
        parts = [int(part) for part in clock.split(":")]
        if len(parts) == 1:
            minutes = parts[0]
        else:
            hours, mins, secs = ([0] * (3 - len(parts)) + parts)[-3:]
            minutes = hours * 60 + mins + (1 if secs else 0)
        minutes += int(days or 0) * 24 * 60
    except ValueError:
        raise UserError(f"--time: cannot read '{text}' (use minutes, H:MM:SS or D-HH:MM:SS).") from None
    if minutes < 1:
        raise UserError(f"--time: '{text}' is under a minute.")
    return minutes


def select_configurations(grid_file, results, metric, track, allow_incomplete, as_json) -> None:
    """The work of `mer-bench sweep select` (options documented in cli/sweep.py)."""
    grid = load_grid(grid_file, get_catalog(), results)
    criterion = Criterion(metric=metric, track=track, allow_incomplete=allow_incomplete)
    selections = select(grid, criterion)
    for selection in selections:
        if selection.chosen is not None:
            write_selection(selection, grid, criterion)
    if as_json:
        console.print_json(json.dumps([_selection_summary(s) for s in selections]))
        return
    console.print(_selection_table(selections, criterion))
    for table in _test_tables(selections):
        console.print(table)
    written = [s for s in selections if s.path is not None]
    if written:
        console.print(f"{len(written)} selection file(s) in {grid.selections}/<dataset>/<model>.json",
                      markup=False, highlight=False, soft_wrap=True)


def _selection_summary(selection: Selection) -> dict:
    chosen = selection.chosen
    return {"model": selection.model, "dataset": selection.dataset, "track": selection.track,
            "selection_file": None if selection.path is None else str(selection.path),
            "selected": None if chosen is None else {**chosen.describe(), "test": summarise_test(chosen.results)},
            "candidates": [candidate.describe() for candidate in selection.candidates]}


def _selection_table(selections: list[Selection], criterion: Criterion) -> Table:
    label = METRICS[criterion.metric].label
    table = Table("model", "dataset", "configurations", "selected", f"valid {label}", title=(
        f"Selected on the validation split: {label}, mean over seeds"))
    for selection in selections:
        ready = sum(1 for candidate in selection.candidates if criterion.admits(candidate))
        counted = f"{ready} of {len(selection.candidates)} ready"
        if selection.chosen is None:
            table.add_row(selection.model, selection.dataset, counted, "none yet (no configuration has all seeds; "
                          "--allow-incomplete)" if not ready else "none (metric undefined)", "")
            continue
        valid = selection.chosen.valid
        table.add_row(selection.model, dataset_label(selection), counted, describe_settings(selection.chosen.first),
                      _mean_text(valid["mean"], valid["std"], valid["n"]))
    return table


def _test_tables(selections: list[Selection]) -> list[Table]:
    """Test metrics of the selected configurations: one table per track and label style (their metrics differ)."""
    groups: dict[tuple[str, str], list[Selection]] = {}
    for selection in selections:
        if selection.chosen is not None:
            style = selection.chosen.results[0].dataset["style"]
            groups.setdefault((selection.track, style), []).append(selection)
    tables = []
    for (track, style), members in groups.items():
        keys = METRIC_KEYS[(track, style)]
        table = Table("model", "dataset", *(METRICS[key].label for key in keys),
                      title=f"Test split of the selected configurations: {track} track, {style.upper()}-style")
        for selection in members:
            summary = summarise_test(selection.chosen.results)["all"].get(track, {})
            cells = [_mean_text(**summary[key]) if key in summary else "n/a" for key in keys]
            table.add_row(selection.model, dataset_label(selection), *cells)
        tables.append(table)
    return tables


def dataset_label(selection: Selection) -> str:
    synthetic = selection.chosen is not None and selection.chosen.results[0].dataset["synthetic"]
    return f"{selection.dataset} (synthetic)" if synthetic and "synthetic" not in selection.dataset else selection.dataset


def _mean_text(mean: float | None, std: float | None, n: int) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "") + f" (n={n})"
