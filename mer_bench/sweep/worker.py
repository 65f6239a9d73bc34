"""One run of a sweep inside a worker (a local process or a Slurm job): claim it, train it, record the outcome.

The run itself is exactly `mer-bench run`'s: `mer_bench.runner.run_one` writes the same result file, keyed by the
spec hash. Around it, the worker takes the run's lock (so two sweeps never train the same run at once), records a
failure instead of raising (so one broken run does not stop the others) and releases the lock however it ends.

What the machine lacks is not a failure of the run: when the dataset cannot be found or read, or the device asked
for is not there, `execute_run` raises `EnvironmentProblem` and records nothing, so the sweep stops with one line
and a rerun on a machine that has them picks up every run (a failure record would need --retry-failed).
"""

from __future__ import annotations

import sys
import time
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from mer_bench.data.split import MERData
from mer_bench.errors import EnvironmentProblem, UserError
from mer_bench.model import NullProgress
from mer_bench.plugins import Catalog, get_catalog
from mer_bench.runner import RunOptions, check_data_identity, data_options, load_checked, run_one
from mer_bench.runspec import RunSpec
from mer_bench.threads import apply_threads
from mer_bench.training import resolve_device
from mer_bench.sweep.store import RunLock, failure_path, lock_path, write_failure

# What `execute_run` reports; the results folder holds the same facts (see mer_bench.sweep.store).
DONE, FAILED, SKIPPED, LOCKED, FAILED_BEFORE = "done", "failed", "skipped", "locked", "failed-before"
UNAVAILABLE = "unavailable"   # a Slurm task's node lacked the data or device: nothing recorded (EnvironmentProblem)


@dataclass(frozen=True)
class WorkerSettings:
    """How every run of a sweep is run; sent to each worker, so everything here pickles."""

    out_dir: Path
    data_dir: Path | None = None
    device: str = "auto"
    probes: bool = True
    retry_failed: bool = False
    progress_lines: bool = False   # timestamped stage/epoch lines on stderr (a Slurm task's log has no other view)


_catalog: Catalog | None = None
_datasets: dict[tuple[str, Path | None], MERData] = {}   # per worker process: a dataset is read once, not per run


def execute_run(spec: RunSpec, settings: WorkerSettings) -> str:
    """Run `spec` unless it is done, failed before (without retry) or held by another worker; never raises for a
    failing run. KeyboardInterrupt (Ctrl-C, or SIGTERM turned into it) still propagates, after the lock is released."""
    out_dir = settings.out_dir
    if spec.result_path(out_dir).exists():
        return SKIPPED
    if failure_path(spec, out_dir).exists() and not settings.retry_failed:
        return FAILED_BEFORE
    lock = RunLock(lock_path(spec, out_dir))
    if not lock.acquire():
        return LOCKED
    try:
        if spec.result_path(out_dir).exists():   # finished by another sweep between our check and our lock
            return SKIPPED
        return _train(spec, settings)
    finally:
        lock.release()


def _train(spec: RunSpec, settings: WorkerSettings) -> str:
    started = time.time()
    catalog = _get_catalog()
    progress = _progress_lines(spec) if settings.progress_lines else NullProgress()
    options = RunOptions(out_dir=settings.out_dir, data_dir=settings.data_dir, device=settings.device,
                         probes=settings.probes, progress=progress)
    data = _environment(lambda: _ready_data(spec, catalog, options))
    try:
        outcome = run_one(spec, data, options, catalog)
        if settings.progress_lines:
            progress.finish_run(outcome)
    except Exception as error:  # any failure of one run is recorded and the sweep goes on
        write_failure(spec, settings.out_dir, error, started, command=spec.command(data_options(options, data)))
        return FAILED
    failure_path(spec, settings.out_dir).unlink(missing_ok=True)
    return DONE


def _progress_lines(spec: RunSpec):
    """The plain reporter of `mer-bench run` under Slurm, for one run (imported here: local workers never need it)."""
    from mer_bench.cli.progress import PlainProgress, plain_interval

    progress = PlainProgress([spec], sys.stderr, interval_s=plain_interval())
    progress.start_run(spec)
    return progress


def _get_catalog() -> Catalog:
    global _catalog
    if _catalog is None:
        _catalog = get_catalog()
    return _catalog


def _ready_data(spec: RunSpec, catalog: Catalog, options: RunOptions) -> MERData:
    """The run's data, once this machine is known to have what the run needs: the device, and the very data its
    run id names (a node may see another file under the same data folder)."""
    resolve_device(options.device)
    return check_data_identity(spec, _dataset(catalog, spec.dataset, options))


def _environment(check):
    """`check()`, with a user error (missing data, no GPU) turned into `EnvironmentProblem`: a plain message that
    pickles back to the sweep's main process (a DataError's own arguments would not)."""
    try:
        return check()
    except UserError as error:
        raise EnvironmentProblem(str(error)) from None


def _dataset(catalog: Catalog, name: str, options: RunOptions) -> MERData:
    key = (name, options.data_dir)
    if key not in _datasets:
        _datasets[key] = load_checked(catalog, name, options)
    return _datasets[key]


def run_slurm_task(specs: list[RunSpec], settings: WorkerSettings) -> list[str]:
    """The body of one Slurm array task: its runs one after the other, with the CPU threads Slurm gave it."""
    apply_threads()      # the CPUs Slurm gave the task: its binding, cgroup quota and SLURM_CPUS_PER_TASK
    settings = dataclasses.replace(settings, progress_lines=True)
    outcomes = []
    for spec in specs:
        try:
            outcomes.append(execute_run(spec, settings))
        except EnvironmentProblem as problem:   # this node cannot run any of them: say so in the job's log, once
            print(f"mer-bench: {problem}", file=sys.stderr, flush=True)
            return outcomes + [UNAVAILABLE] * (len(specs) - len(outcomes))
    return outcomes
