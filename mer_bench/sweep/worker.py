"""One run of a sweep inside a worker (a local process or a Slurm job): claim it, train it, record the outcome.

The run itself is exactly `mer-bench run`'s: `mer_bench.runner.run_one` writes the same result file, keyed by the
spec hash. Around it, the worker takes the run's lock (so two sweeps never train the same run at once), records a
failure instead of raising (so one broken run does not stop the others) and releases the lock however it ends.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from mer_bench.data.loading import load_dataset
from mer_bench.data.split import MERData
from mer_bench.plugins import Catalog, get_catalog
from mer_bench.runner import RunOptions, run_one
from mer_bench.runspec import RunSpec
from mer_bench.sweep.store import RunLock, failure_path, lock_path, write_failure

# What `execute_run` reports; the results folder holds the same facts (see mer_bench.sweep.store).
DONE, FAILED, SKIPPED, LOCKED, FAILED_BEFORE = "done", "failed", "skipped", "locked", "failed-before"


@dataclass(frozen=True)
class WorkerSettings:
    """How every run of a sweep is run; sent to each worker, so everything here pickles."""

    out_dir: Path
    data_dir: Path | None = None
    device: str = "auto"
    probes: bool = True
    retry_failed: bool = False


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
    try:
        catalog = _get_catalog()
        options = RunOptions(out_dir=settings.out_dir, data_dir=settings.data_dir, device=settings.device,
                             probes=settings.probes)
        run_one(spec, _dataset(catalog, spec.dataset, settings.data_dir), options, catalog)
    except Exception as error:  # any failure of one run is recorded and the sweep goes on
        write_failure(spec, settings.out_dir, error, started)
        return FAILED
    failure_path(spec, settings.out_dir).unlink(missing_ok=True)
    return DONE


def _get_catalog() -> Catalog:
    global _catalog
    if _catalog is None:
        _catalog = get_catalog()
    return _catalog


def _dataset(catalog: Catalog, name: str, data_dir: Path | None) -> MERData:
    key = (name, data_dir)
    if key not in _datasets:
        _datasets[key] = load_dataset(catalog.dataset(name).value, data_dir, None)
    return _datasets[key]


def run_slurm_task(specs: list[RunSpec], settings: WorkerSettings) -> list[str]:
    """The body of one Slurm array task: its runs one after the other, with the CPU threads Slurm gave it."""
    import torch

    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if cpus and cpus.isdigit():
        torch.set_num_threads(int(cpus))
    return [execute_run(spec, settings) for spec in specs]
