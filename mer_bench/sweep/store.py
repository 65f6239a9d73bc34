"""What a results folder says about each run of a sweep: done, failed, running elsewhere, or still to do.

Next to each result file ``OUT/<dataset>/<model>/<run-id>.json`` a sweep may leave two hidden files (hidden so that
`mer_bench.results.read_results`, which reads every visible ``*.json``, never mistakes them for results):

- ``.<run-id>.lock``: the run is being trained now, by a sweep or a `mer-bench run` (see `mer_bench.runlock`).
- ``.<run-id>.failed.json``: the last attempt raised. It holds the error, its traceback, where and when it ran and the
  command that reproduces the run. A later success deletes it.
"""

from __future__ import annotations

import enum
import json
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mer_bench.results import write_json_atomic
from mer_bench.runlock import (STALE_AFTER_S, RunLock, holder_record, lock_is_stale, lock_path,  # noqa: F401
                               now_iso, read_lock)   # re-exported: sweeps and select read them from here
from mer_bench.runspec import RunSpec


class RunState(str, enum.Enum):
    DONE = "done"
    FAILED = "failed"
    RUNNING = "running"
    REMAINING = "remaining"


def failure_path(spec: RunSpec, out_dir: Path) -> Path:
    return spec.result_path(out_dir).with_name(f".{spec.run_id}.failed.json")


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
