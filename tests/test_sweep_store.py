"""Run locks shared by sweeps writing to one results folder: exclusive, taken over only from holders that are gone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from mer_bench.plugins import get_catalog
from mer_bench.runner import make_spec
from mer_bench import runlock
from mer_bench.sweep.store import STALE_AFTER_S, RunLock, lock_path
from mer_bench.sweep.worker import DONE, LOCKED, SKIPPED, WorkerSettings, execute_run
from tests.test_sweep_support import files_under


def write_holder(path, host: str, pid: int, age_s: float = 0.0) -> None:
    path.write_text(json.dumps({"host": host, "pid": pid, "slurm_job": None, "started": "then"}))
    then = time.time() - age_s
    os.utime(path, (then, then))


def test_a_run_lock_has_one_holder_at_a_time(tmp_path):
    path = tmp_path / ".run.lock"
    first, second = RunLock(path), RunLock(path)
    assert first.acquire()
    assert not second.acquire()
    first.release()
    assert not path.exists()
    assert second.acquire()
    second.release()


def test_the_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    path = tmp_path / ".run.lock"
    write_holder(path, socket.gethostname(), int(finished.stdout))
    lock = RunLock(path)
    assert lock.acquire()
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()


def test_a_lock_from_another_host_is_kept_until_its_heartbeat_stops(tmp_path):
    path = tmp_path / ".run.lock"
    write_holder(path, "some-other-node", 1, age_s=STALE_AFTER_S / 2)
    assert not RunLock(path).acquire()
    write_holder(path, "some-other-node", 1, age_s=STALE_AFTER_S + 5)
    lock = RunLock(path)
    assert lock.acquire()
    lock.release()


def test_the_holder_refreshes_its_lock_while_it_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(runlock, "HEARTBEAT_S", 0.05)
    path = tmp_path / ".run.lock"
    lock = RunLock(path)
    assert lock.acquire()
    try:
        old = time.time() - STALE_AFTER_S - 5
        os.utime(path, (old, old))
        deadline = time.time() + 5
        while path.stat().st_mtime < time.time() - 60 and time.time() < deadline:
            time.sleep(0.05)
        assert path.stat().st_mtime > time.time() - 60
        assert not RunLock(path).acquire()
    finally:
        lock.release()


def test_a_worker_leaves_a_run_to_the_sweep_that_holds_it_and_never_redoes_a_finished_one(tmp_path):
    spec = make_spec(get_catalog(), "mean", "synthetic", 1111)
    settings = WorkerSettings(out_dir=tmp_path, probes=False)
    other_sweep = RunLock(lock_path(spec, tmp_path))
    assert other_sweep.acquire()
    assert execute_run(spec, settings) == LOCKED
    other_sweep.release()
    assert execute_run(spec, settings) == DONE
    assert execute_run(spec, settings) == SKIPPED
    assert files_under(tmp_path) == {spec.result_path(tmp_path)}
