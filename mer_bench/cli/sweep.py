"""`mer-bench sweep plan|run|select`: grids of runs, resumable, on this machine or on Slurm; tuning on validation.

This module only declares the commands, so `mer-bench sweep ... --help` is quick; their work is in sweep_actions,
imported when a command runs (it loads the runner, torch and the model plugins).
"""

from __future__ import annotations

from pathlib import Path

import click

MAX_LOCAL_JOBS = 1024         # worker processes: far beyond any one machine, short of exhausting the process table
RUNS_LISTED_BY_DEFAULT = 40   # a small sweep's plan lists its runs; a large one's only when asked

grid_argument = click.argument("grid_file", metavar="GRID_FILE", type=click.Path(path_type=Path))
results_option = click.option("--results", type=click.Path(path_type=Path),
                              help="Results folder, instead of the grid file's `results`.")


@click.group("sweep")
def sweep_group() -> None:
    """Grids of runs (models x datasets x seeds x settings): plan, run (locally or on Slurm), select on validation."""


@sweep_group.command("plan")
@grid_argument
@results_option
@click.option("--jobs", type=click.IntRange(min=1, max=MAX_LOCAL_JOBS),
              help="Local jobs the time estimate assumes (default: fitted).")
@click.option("--runs", "list_runs", is_flag=True, help=f"List every run with its state (done by default for up "
              f"to {RUNS_LISTED_BY_DEFAULT} runs).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan_command(grid_file: Path, results: Path | None, jobs: int | None, list_runs: bool, as_json: bool) -> None:
    """Show the runs of GRID_FILE: done, failed, running, remaining, and the time the rest should take."""
    from mer_bench.cli import sweep_actions

    sweep_actions.plan_sweep(grid_file, results, jobs, list_runs, as_json)


@sweep_group.command("run")
@grid_argument
@results_option
@click.option("--executor", type=click.Choice(["local", "slurm"]), default="local", show_default=True,
              help="local: worker processes on this machine; slurm: a job array through submitit.")
@click.option("--jobs", type=click.IntRange(min=1, max=MAX_LOCAL_JOBS), help="Local worker processes (default: one "
              "per GPU, else one per CPU core, up to 8).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--retry-failed", is_flag=True, help="Rerun runs recorded as failed (skipped otherwise).")
@click.option("--partition", help="Slurm partition (default: the cluster's default).")
@click.option("--time", "time_limit", default="240", show_default=True, help="Slurm time limit per job: minutes, "
              "or H:MM:SS, or D-HH:MM:SS.")
@click.option("--gpus", type=click.IntRange(min=0), default=0, show_default=True, help="GPUs per Slurm job.")
@click.option("--cpus", type=click.IntRange(min=1), default=2, show_default=True, help="CPU cores per Slurm job.")
@click.option("--mem", "mem_gb", type=click.FloatRange(min=0, min_open=True), help="Memory per Slurm job, in GB.")
@click.option("--max-parallel", type=click.IntRange(min=1), help="At most this many Slurm jobs at once.")
@click.option("--runs-per-job", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs trained one after the other by each Slurm job (for many short runs).")
@click.option("--slurm-folder", type=click.Path(path_type=Path), help="Shared folder for submitit's pickles and "
              "logs (default: <results>/.slurm).")
@click.option("--slurm-option", "slurm_options", multiple=True, metavar="KEY=VALUE",
              help="Any other sbatch option, e.g. account=lab or qos=high (repeatable).")
@click.option("--no-wait", is_flag=True, help="Slurm: submit and return; follow with `mer-bench sweep plan`.")
def run_command(grid_file, results, executor, jobs, device, retry_failed, partition, time_limit, gpus, cpus, mem_gb,
                max_parallel, runs_per_job, slurm_folder, slurm_options, no_wait) -> None:
    """Run every run of GRID_FILE that is not done yet; resumes where a previous sweep stopped.

    Before any run starts, every dataset of the grid must be found and the results folder writable: what the
    machine lacks (data, a GPU) stops the sweep with one line and is never recorded as failed runs."""
    from mer_bench.cli import sweep_actions

    sweep_actions.run_sweep(grid_file, results, executor, jobs, device, retry_failed, partition, time_limit, gpus, cpus, mem_gb, max_parallel, runs_per_job, slurm_folder, slurm_options, no_wait)


@sweep_group.command("select")
@grid_argument
@results_option
@click.option("--metric", default="has0_acc2", show_default=True, help="Validation metric to select on.")
@click.option("--track", type=click.Choice(["regression", "classification"]),
              help="Track of the metric (default: regression when the model outputs a score, else classification).")
@click.option("--allow-incomplete", is_flag=True, help="Let configurations missing some seeds compete.")
@click.option("--json", "as_json", is_flag=True, help="Print the selections as JSON.")
def select_command(grid_file, results, metric, track, allow_incomplete, as_json) -> None:
    """Choose, per model and dataset, the configuration with the best mean validation metric; report its test
    metrics only, and write the selection with its evidence to the grid's selections folder."""
    from mer_bench.cli import sweep_actions

    sweep_actions.select_configurations(grid_file, results, metric, track, allow_incomplete, as_json)
