"""A Slurm task's runs write timestamped progress lines into the job's log; local sweep workers stay quiet."""

from __future__ import annotations

import re

from mer_bench.plugins import get_catalog
from mer_bench.runner import make_spec
from mer_bench.sweep.worker import DONE, WorkerSettings, execute_run, run_slurm_task

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def _spec(seed: int):
    catalog = get_catalog()
    checksum = catalog.dataset("synthetic").value.generate().sha256
    return make_spec(catalog, "lf-dnn", "synthetic", seed, data_sha256=checksum, epochs=1)


def test_a_slurm_task_logs_stages_and_the_end_of_each_run(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("MER_BENCH_PROGRESS_INTERVAL", "0")
    outcomes = run_slurm_task([_spec(1111)], WorkerSettings(out_dir=tmp_path, device="cpu", probes=False))
    assert outcomes == [DONE]
    log = capfd.readouterr().err.splitlines()
    assert any(re.match(STAMP + r" .*lf-dnn.*: started", line) for line in log), log
    assert any("epoch" in line for line in log), log
    assert re.match(STAMP + r" .*done in \d", log[-1]), log


def test_a_local_worker_writes_no_progress_lines(tmp_path, capfd):
    assert execute_run(_spec(1112), WorkerSettings(out_dir=tmp_path, device="cpu", probes=False)) == DONE
    assert capfd.readouterr().err == ""
