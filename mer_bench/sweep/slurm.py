"""The Slurm executor, through submitit: the runs still to do go out as one job array.

Each array task trains `runs_per_job` runs one after the other (`mer_bench.sweep.worker.run_slurm_task`), taking each
run's lock like a local worker, so a Slurm sweep and a local one (or two Slurm sweeps) can share a results folder.
submitit needs a folder every node can read for its pickles and logs (`folder`), and a time limit per job.

Waiting: a task is finished when submitit's result pickle for it exists. A task that Slurm ended without one (time
limit, memory, node failure, scancel) is noticed when its array has left the queue (`squeue`), and its runs are
recorded as failed with the path of the task's log. This does not rely on `sacct`, which clusters without
accounting storage (such as a one-node test cluster) do not have.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mer_bench.errors import UserError
from mer_bench.runspec import RunSpec
from mer_bench.sweep.store import failure_path, lock_path, read_lock, write_lost_failure
from mer_bench.sweep.worker import FAILED, WorkerSettings, run_slurm_task

QUEUE_CHECK_S = 10.0   # squeue is asked at most this often; result pickles are looked for at every poll


@dataclass(frozen=True)
class SlurmOptions:
    """What each Slurm job asks for, and how runs are packed into jobs."""

    folder: Path                          # shared folder for submitit's pickles and logs
    time_min: int = 240                   # time limit per job, minutes
    partition: str | None = None          # None: the cluster's default partition
    gpus: int = 0                         # GPUs per job
    cpus: int = 2                         # CPU cores per job (torch uses this many threads)
    mem_gb: float | None = None           # memory per job; None: the cluster's default
    max_parallel: int | None = None       # at most this many jobs of the array at once; None: submitit's 256
    runs_per_job: int = 1                 # runs trained one after the other by each array task
    extra: dict[str, str] = field(default_factory=dict)   # any other sbatch option, e.g. {"account": "lab"}

    def executor_parameters(self) -> dict[str, Any]:
        parameters: dict[str, Any] = {"timeout_min": self.time_min, "nodes": 1, "tasks_per_node": 1,
                                      "cpus_per_task": self.cpus, "name": "mer-bench-sweep"}
        if self.gpus:   # "--gpus-per-node=0" is rejected by clusters without GPUs: leave it out
            parameters["gpus_per_node"] = self.gpus
        if self.partition:
            parameters["slurm_partition"] = self.partition
        if self.mem_gb:
            parameters["mem_gb"] = self.mem_gb
        if self.max_parallel:
            parameters["slurm_array_parallelism"] = self.max_parallel
        if self.extra:
            parameters["slurm_additional_parameters"] = dict(self.extra)
        return parameters


@dataclass
class SlurmSubmission:
    jobs: list[Any]                    # submitit Job objects, one per array task
    chunks: list[list[RunSpec]]        # the runs of each task, in the same order

    @property
    def array_ids(self) -> list[str]:
        return sorted({str(job.job_id).split("_")[0] for job in self.jobs})


def check_slurm() -> None:
    if shutil.which("sbatch") is None:
        raise UserError("--executor slurm needs Slurm's 'sbatch' on PATH (run this on a machine that submits Slurm "
                        "jobs, or use --executor local).")


def submit(specs: list[RunSpec], settings: WorkerSettings, options: SlurmOptions) -> SlurmSubmission:
    """Submit every run as tasks of one job array; returns without waiting."""
    import submitit

    check_slurm()
    executor = submitit.AutoExecutor(folder=options.folder, cluster="slurm")
    try:
        executor.update_parameters(**options.executor_parameters())
    except (ValueError, TypeError) as error:
        raise UserError(f"Slurm options: {error}") from None
    size = max(1, options.runs_per_job)
    chunks = [specs[start:start + size] for start in range(0, len(specs), size)]
    try:
        jobs = executor.map_array(run_slurm_task, chunks, [settings] * len(chunks))
    except (subprocess.CalledProcessError, submitit.core.utils.FailedJobError) as error:
        raise UserError(f"sbatch refused the sweep's job array: {error}".strip()) from None
    return SlurmSubmission(jobs, chunks)


def wait_for(submission: SlurmSubmission, settings: WorkerSettings, on_poll: Callable[[], None] = lambda: None,
             poll_s: float = 2.0) -> dict[RunSpec, str]:
    """Wait until every task has reported or left the queue; returns the outcome of each run."""
    last_queue_check, queued = 0.0, True
    while True:
        on_poll()
        if all(job.paths.result_pickle.exists() for job in submission.jobs):
            break
        if time.monotonic() - last_queue_check >= QUEUE_CHECK_S:
            was_queued, queued = queued, in_queue(submission.array_ids)
            last_queue_check = time.monotonic()
            if not queued and not was_queued:   # two checks in a row: give a shared filesystem time to catch up
                break
        time.sleep(poll_s)
    on_poll()
    return collect(submission, settings)


def in_queue(array_ids: list[str]) -> bool:
    """Is any task of these arrays pending or running? A failing squeue counts as yes (keep waiting), except for
    "Invalid job id", which is what squeue says of arrays long finished."""
    command = ["squeue", "--noheader", "--format=%F", "--jobs", ",".join(array_ids)]
    answer = subprocess.run(command, capture_output=True, text=True, check=False)
    if answer.returncode != 0:
        return "invalid job id" not in answer.stderr.lower()
    return any(line.strip() for line in answer.stdout.splitlines())


def collect(submission: SlurmSubmission, settings: WorkerSettings) -> dict[RunSpec, str]:
    """Outcomes from the tasks' result pickles; a task without one has its unfinished runs recorded as failed."""
    outcomes: dict[RunSpec, str] = {}
    for job, chunk in zip(submission.jobs, submission.chunks):
        reported, message = _task_outcomes(job)
        if message is None:
            outcomes.update(zip(chunk, reported))
            continue
        for spec in chunk:
            if spec.result_path(settings.out_dir).exists() or failure_path(spec, settings.out_dir).exists():
                continue
            write_lost_failure(spec, settings.out_dir, message, slurm_job=str(job.job_id), log=str(job.paths.stderr))
            _remove_lock_of(spec, settings.out_dir, str(job.job_id))
            outcomes[spec] = FAILED
    return outcomes


def _task_outcomes(job: Any) -> tuple[list[str], str | None]:
    """The outcomes the task returned (its result pickle is read once), or why it returned none."""
    if not job.paths.result_pickle.exists():
        return [], (f"Slurm job {job.job_id} ended without a result (time limit, memory, node failure or scancel); "
                    f"see {job.paths.stderr}")
    try:
        return job.result(), None
    except Exception as error:  # the task itself raised (e.g. mer_bench not importable on the node)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return [], f"Slurm job {job.job_id} failed: {first_line}; see {job.paths.stderr}"


def _remove_lock_of(spec: RunSpec, out_dir: Path, job_id: str) -> None:
    """The task is gone, so a lock it left is stale now; someone else's lock is left alone."""
    path = lock_path(spec, out_dir)
    holder = read_lock(path)
    if holder and holder.get("slurm_job") == job_id:
        path.unlink(missing_ok=True)
