"""What a results folder says about each run of a sweep: done, failed, running elsewhere, or still to do.

Next to each result file ``OUT/<dataset>/<model>/<run-id>.json`` a sweep may leave two hidden files (hidden so that
`mer_bench.results.read_results`, which reads every visible ``*.json``, never mistakes them for results):

- ``.<run-id>.lock``: the run is being trained now. Created with ``O_CREAT | O_EXCL``, so of two sweeps (or two Slurm
  jobs) that reach the same run at once exactly one trains it. Its holder refreshes the file's modification time
  every `HEARTBEAT_S` seconds; a lock whose holder is gone (a dead process on this host, or no heartbeat for
  `STALE_AFTER_S` seconds on any host) is stale and is taken over.
- ``.<run-id>.failed.json``: the last attempt raised. It holds the error, its traceback, where and when it ran and the
  command that reproduces the run. A later success deletes it.
"""

from __future__ import annotations

import enum
import json
import os
import socket
import threading
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mer_bench.results import write_json_atomic
from mer_bench.runspec import RunSpec

HEARTBEAT_S = 30.0
STALE_AFTER_S = 180.0   # six missed heartbeats: the holder is gone (killed job, lost node)


class RunState(str, enum.Enum):
    DONE = "done"
    FAILED = "failed"
    RUNNING = "running"
    REMAINING = "remaining"


def lock_path(spec: RunSpec, out_dir: Path) -> Path:
    return spec.result_path(out_dir).with_name(f".{spec.run_id}.lock")


def failure_path(spec: RunSpec, out_dir: Path) -> Path:
    return spec.result_path(out_dir).with_name(f".{spec.run_id}.failed.json")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def holder_record() -> dict[str, Any]:
    """Who holds a lock or made an attempt: enough to find the process or the Slurm job."""
    job = os.environ.get("SLURM_JOB_ID")
    if job and os.environ.get("SLURM_ARRAY_TASK_ID"):
        job = f"{os.environ.get('SLURM_ARRAY_JOB_ID', job)}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job": job, "started": now_iso()}


class RunLock:
    """An exclusive claim on one run, shared by every sweep that writes to the same results folder."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self) -> bool:
        """True if this process now holds the run; False if a live holder has it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):   # one retry, after taking over a stale lock
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if break_stale_lock(self.path):
                    continue
                return False
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(holder_record(), handle)
            self._start_heartbeat()
            return True
        return False

    def release(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        self.path.unlink(missing_ok=True)

    def _start_heartbeat(self) -> None:
        # A daemon thread, so a run that never returns cannot keep the process alive through its lock.
        self._heartbeat = threading.Thread(target=self._beat, name=f"heartbeat {self.path.name}", daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except FileNotFoundError:   # taken over as stale (we were suspended for minutes): nothing to keep
                return


def read_lock(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}   # being written right now, or damaged: judged by its age alone


def lock_is_stale(path: Path, holder: dict[str, Any] | None = None) -> bool:
    holder = read_lock(path) if holder is None else holder
    if holder is None:
        return False   # gone: nothing to take over
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    if age > STALE_AFTER_S:
        return True
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        return not _process_alive(holder["pid"])
    return False


def break_stale_lock(path: Path) -> bool:
    """Remove `path` if its holder is gone. Two sweeps may both judge it stale and both retry: at worst one run is
    trained twice, and its result file is still never partial (writes are atomic)."""
    holder = read_lock(path)
    if holder is None:
        return True   # released meanwhile: try again
    if not lock_is_stale(path, holder):
        return False
    if read_lock(path) != holder:
        return False   # replaced by a live holder between our two reads
    path.unlink(missing_ok=True)
    return True


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_failure(spec: RunSpec, out_dir: Path, error: BaseException, started: float, **extra: Any) -> Path:
    """Record a failed attempt with its error and traceback; `plan` shows it and `--retry-failed` reruns it."""
    path = failure_path(spec, out_dir)
    record = {"run_id": spec.run_id, "spec": spec.to_dict(), "command": spec.command(),
              "error": f"{type(error).__name__}: {error}",
              "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
              **holder_record(), "finished": now_iso(), "seconds": round(time.time() - started, 3), **extra}
    write_json_atomic(path, record)
    return path


def write_lost_failure(spec: RunSpec, out_dir: Path, message: str, **extra: Any) -> Path:
    """Record a run whose process ended without reporting (killed for time or memory, lost node)."""
    path = failure_path(spec, out_dir)
    write_json_atomic(path, {"run_id": spec.run_id, "spec": spec.to_dict(), "command": spec.command(),
                             "error": message, "traceback": None, "finished": now_iso(), **extra})
    return path


def read_failure(spec: RunSpec, out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads(failure_path(spec, out_dir).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        return {"error": f"unreadable failure record ({error})"}


def run_state(spec: RunSpec, out_dir: Path) -> RunState:
    """A result file wins; then a live lock; then a failure record."""
    if spec.result_path(out_dir).exists():
        return RunState.DONE
    lock = lock_path(spec, out_dir)
    if lock.exists() and not lock_is_stale(lock):
        return RunState.RUNNING
    if failure_path(spec, out_dir).exists():
        return RunState.FAILED
    return RunState.REMAINING


def scan(specs: Iterable[RunSpec], out_dir: Path) -> dict[RunSpec, RunState]:
    return {spec: run_state(spec, out_dir) for spec in specs}


def lock_started(spec: RunSpec, out_dir: Path) -> float | None:
    """When the current holder took the run (the lock file's creation), for elapsed times in progress views."""
    try:
        return lock_path(spec, out_dir).stat().st_ctime
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class Estimate:
    seconds: float | None       # summed run time of the runs still to do; None when nothing finished yet
    from_runs: int              # finished runs whose timings the estimate is based on


def estimate_remaining(states: dict[RunSpec, RunState], out_dir: Path) -> Estimate:
    """Remaining run time from finished runs' timings: the mean of the same model and dataset, else of the same
    model, else of every finished run."""
    timings: dict[tuple[str, str], list[float]] = {}
    for spec, state in states.items():
        if state is RunState.DONE and (seconds := _run_seconds(spec.result_path(out_dir))) is not None:
            timings.setdefault((spec.model, spec.dataset), []).append(seconds)
    finished = sum(len(values) for values in timings.values())
    todo = [spec for spec, state in states.items() if state is RunState.REMAINING]
    if not todo:
        return Estimate(0.0, finished)
    if not finished:
        return Estimate(None, 0)
    return Estimate(sum(_expected_seconds(spec, timings) for spec in todo), finished)


def _expected_seconds(spec: RunSpec, timings: dict[tuple[str, str], list[float]]) -> float:
    same = timings.get((spec.model, spec.dataset))
    if not same:
        same = [s for (model, _), values in timings.items() if model == spec.model for s in values]
    if not same:
        same = [s for values in timings.values() for s in values]
    return sum(same) / len(same)


def _run_seconds(path: Path) -> float | None:
    # Plain JSON, not read_result: schema validation of every file would dominate `plan` on large sweeps.
    try:
        total = json.loads(path.read_text(encoding="utf-8")).get("timings", {}).get("total")
    except (OSError, ValueError):
        return None
    return float(total) if isinstance(total, (int, float)) else None
