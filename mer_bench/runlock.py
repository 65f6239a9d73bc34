"""The per-run lock: ``OUT/<dataset>/<model>/.<run-id>.lock``, taken by `mer-bench run` and by every sweep worker.

Created with ``O_CREAT | O_EXCL``, so of two processes (two `run`s, two sweeps, two Slurm jobs, or a mix) that reach
the same run at once exactly one trains it. Its holder refreshes the file's modification time every `HEARTBEAT_S`
seconds; a lock whose holder is gone is stale and is taken over: a dead process on this host, or no heartbeat for
`STALE_AFTER_S` seconds on any host. A modification time more than `STALE_AFTER_S` in the future (a clock set wrong,
a copied or touched file) is stale too: a live holder would have set it to "now" long before.

What a second process does with a held lock is its caller's choice: a sweep worker leaves the run to its holder
(`mer_bench.sweep.worker`); `mer-bench run` waits for it and then reuses the holder's result (`mer_bench.runner`).

A lock file that is not a JSON object (damaged, or being written right now) is judged by its age alone; a folder in
the lock's place is a one-line error asking the user to remove it, never taken over silently.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mer_bench.errors import UserError
from mer_bench.fileio import FILE_MODE, ensure_dir, output_error
from mer_bench.runspec import RunSpec

HEARTBEAT_S = 30.0
STALE_AFTER_S = 180.0   # six missed heartbeats: the holder is gone (killed job, lost node)


def lock_path(spec: RunSpec, out_dir: Path) -> Path:
    return spec.result_path(out_dir).with_name(f".{spec.run_id}.lock")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def holder_record() -> dict[str, Any]:
    """Who holds a lock or made an attempt: enough to find the process or the Slurm job."""
    job = os.environ.get("SLURM_JOB_ID")
    if job and os.environ.get("SLURM_ARRAY_TASK_ID"):
        job = f"{os.environ.get('SLURM_ARRAY_JOB_ID', job)}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job": job, "started": now_iso()}


def describe_holder(holder: dict[str, Any] | None) -> str:
    """"process 123 on host-a (Slurm job 45_6) since <time>", from whatever of it the lock file holds."""
    holder = holder or {}
    where = f"process {holder.get('pid', '?')} on {holder.get('host', '?')}"
    job = f" (Slurm job {holder['slurm_job']})" if holder.get("slurm_job") else ""
    since = f" since {holder['started']}" if holder.get("started") else ""
    return where + job + since


class RunLock:
    """An exclusive claim on one run, shared by every process that writes to the same results folder."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self) -> bool:
        """True if this process now holds the run; False if a live holder has it."""
        ensure_dir(self.path.parent)
        for _ in range(2):   # one retry, after taking over a stale lock
            try:
                # FILE_MODE: the umask decides who may read it, as for any file the user creates
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
            except FileExistsError:
                if break_stale_lock(self.path):
                    continue
                return False
            except OSError as error:
                raise output_error(self.path, error, "cannot create the run's lock file") from None
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(holder_record(), handle)
            self._start_heartbeat()
            return True
        return False

    def release(self) -> None:
        # Unlink before waiting for the heartbeat thread: a signal that interrupts the wait must not leave the lock.
        self._stop.set()
        self.path.unlink(missing_ok=True)
        if self._heartbeat is not None:
            self._heartbeat.join()

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
    """The holder record; None when there is no lock; {} when it cannot be read as one (judged by age alone)."""
    if path.is_dir():
        raise UserError(f"{path}: a folder where the run's lock file should be; remove it (`rmdir` or `rm -r`) "
                        "and start again.")
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}   # being written right now, or damaged
    return holder if isinstance(holder, dict) else {}   # a JSON list or number is damage too


def lock_is_stale(path: Path, holder: dict[str, Any] | None = None) -> bool:
    holder = read_lock(path) if holder is None else holder
    if holder is None:
        return False   # gone: nothing to take over
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    if abs(age) > STALE_AFTER_S:   # no heartbeat for that long, or a time in the future no heartbeat could set
        return True
    if holder.get("host") == socket.gethostname() and _is_pid(holder.get("pid")):
        return not process_alive(holder["pid"])
    return False


def break_stale_lock(path: Path) -> bool:
    """Remove `path` if its holder is gone. Two processes may both judge it stale and both retry: at worst one run is
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


def _is_pid(value: Any) -> bool:
    # bool is an int, and os.kill refuses numbers beyond the C int range with OverflowError
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
