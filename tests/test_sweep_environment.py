"""What the machine lacks is never a run failure; huge grids answer at once; odd locks; workers die with the sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from mer_bench.cli import main
from mer_bench.cli.sweep_actions import _finish
from mer_bench.errors import EnvironmentProblem, UserError
from mer_bench.plugins import get_catalog
from mer_bench.runlock import STALE_AFTER_S, RunLock, lock_is_stale
from mer_bench.runner import data_checksum, make_spec
from mer_bench.sweep.grid import MAX_GRID_RUNS, load_grid
from mer_bench.sweep.worker import FAILED, WorkerSettings, execute_run
from tests import test_sweep_support as support


def invoke(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def missing_data_grid(tmp_path):
    (tmp_path / "no-data").mkdir()
    return support.write_grid(tmp_path, """
        results = "results"
        data_dir = "no-data"
        datasets = ["sims", "synthetic", "mosi"]
        seeds = [1111, 1112]
        [models.mean]
    """)


@pytest.mark.parametrize("command", ["run", "plan", "select"])
def test_a_grid_whose_data_is_missing_is_one_line_and_records_nothing(tmp_path, capsys, command):
    grid_file = missing_data_grid(tmp_path)
    code, out, err = invoke(["sweep", command, str(grid_file)], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1, err
    assert err.startswith(f"Error: {grid_file}: No file found for dataset 'sims'.")
    assert err.rstrip().endswith("(missing too: mosi) (a grid file names its folder with data_dir)")
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*"))


def test_a_worker_that_cannot_find_the_data_raises_an_environment_problem_and_records_nothing(tmp_path):
    (tmp_path / "no-data").mkdir()
    spec = make_spec(get_catalog(), "mean", "mosi", 1111, data_sha256="0" * 64)
    settings = WorkerSettings(out_dir=tmp_path / "results", data_dir=tmp_path / "no-data", probes=False)
    with pytest.raises(EnvironmentProblem, match="No file found for dataset 'mosi'"):
        execute_run(spec, settings)
    assert not any((tmp_path / "results").rglob("*.*"))   # no failure record, no lock left


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_missing_gpu_is_an_environment_problem_not_a_failed_run(tmp_path):
    catalog = get_catalog()
    spec = make_spec(catalog, "mean", "synthetic", 1111, data_sha256=catalog.dataset("synthetic").value.generate().sha256)
    with pytest.raises(EnvironmentProblem, match="CUDA"):
        execute_run(spec, WorkerSettings(out_dir=tmp_path, device="cuda", probes=False))
    assert not any(tmp_path.rglob("*.*"))


def test_a_grid_of_ten_million_runs_is_refused_at_once(tmp_path, capsys):
    values = ", ".join(str(i) for i in range(100))
    grid_file = support.write_grid(tmp_path, f"""
        results = "results"
        datasets = ["synthetic"]
        seeds = [{values}]
        [models.mean.grid]
        a = [{values}]
        b = [{values}]
        c = [{values}]
    """)
    started = time.monotonic()
    code, _, err = invoke(["sweep", "plan", str(grid_file)], capsys)
    assert time.monotonic() - started < 5
    assert code == 2 and err.count("\n") == 1
    assert f"100,000,000 runs (mean 100,000,000) is more than the {MAX_GRID_RUNS:,}" in err


def test_follow_up_commands_keep_the_results_option(tmp_path, capsys):
    grid_file = support.write_grid(tmp_path, """
        results = "results"
        datasets = ["synthetic"]
        seeds = [1111]
        [models.mean]
    """)
    grid = load_grid(grid_file, get_catalog(), tmp_path / "elsewhere")
    with pytest.raises(UserError) as failed:
        _finish(grid, {grid.specs[0]: FAILED}, tmp_path / "elsewhere")
    message = str(failed.value)
    assert f"mer-bench sweep plan {grid_file} --results {tmp_path / 'elsewhere'}" in message
    assert f"mer-bench sweep run {grid_file} --results {tmp_path / 'elsewhere'} --retry-failed" in message


def test_sweep_seeds_beyond_numpy_range_are_refused_naming_the_key(tmp_path, capsys):
    grid_file = support.write_grid(tmp_path, """
        results = "results"
        datasets = ["synthetic"]
        seeds = [99999999999]
        [models.mean]
    """)
    code, _, err = invoke(["sweep", "plan", str(grid_file)], capsys)
    assert code == 2 and f"{grid_file}: seeds: must be a list of integers from 0 to 4294967295" in err


# --- locks -----------------------------------------------------------------------------------------------------

def test_a_lock_holding_a_json_list_is_judged_by_its_age_not_a_traceback(tmp_path):
    path = tmp_path / ".run.lock"
    path.write_text("[1, 2, 3]")
    assert not RunLock(path).acquire()   # fresh: might be a holder writing it right now
    old = time.time() - STALE_AFTER_S - 5
    os.utime(path, (old, old))
    lock = RunLock(path)
    assert lock.acquire()
    lock.release()


def test_a_lock_with_a_pid_beyond_the_int_range_is_no_traceback(tmp_path):
    import socket
    path = tmp_path / ".run.lock"
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": 10**30}))
    assert lock_is_stale(path) is False


def test_a_folder_in_place_of_a_lock_is_one_line(tmp_path):
    path = tmp_path / ".run.lock"
    path.mkdir()
    with pytest.raises(UserError, match="a folder where the run's lock file should be"):
        RunLock(path).acquire()


def test_a_lock_from_the_future_goes_stale(tmp_path):
    path = tmp_path / ".run.lock"
    path.write_text(json.dumps({"host": "other-node", "pid": 1}))
    future = time.time() + 10 * 365 * 24 * 3600
    os.utime(path, (future, future))
    assert lock_is_stale(path)
    lock = RunLock(path)
    assert lock.acquire()
    lock.release()


# --- workers die with the main process -------------------------------------------------------------------------

def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose; it lingers only until its parent (here: init) reaps it
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def descendants(pid: int) -> set[int]:
    found, frontier = set(), [pid]
    while frontier:
        parent = frontier.pop()
        listed = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout.split()
        children = {int(child) for child in listed}
        frontier += list(children - found)
        found |= children
    return found


def test_kill_9_of_a_sweep_leaves_no_worker_or_forkserver_running(tmp_path):
    plugin_env = support.install_probe_plugin(tmp_path / "site")
    grid_file = support.write_grid(tmp_path, """
        results = "results"
        datasets = ["synthetic"]
        seeds = [1111, 1112]
        probes = false
        [models.sweep-probe]
        settings = { delay = 60.0 }
    """)
    sweep = subprocess.Popen(support.mer_bench_command("sweep", "run", str(grid_file), "--jobs", "2"),
                             env=plugin_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list((tmp_path / "results").rglob(".*.lock"))) < 2:   # both workers are training
        assert sweep.poll() is None and time.monotonic() < deadline, "the sweep did not start its runs"
        time.sleep(0.2)
    children = descendants(sweep.pid)
    assert len(children) >= 3   # the forkserver and two workers (and perhaps a resource tracker)
    sweep.send_signal(signal.SIGKILL)
    sweep.wait()
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid in children if alive(pid)]
    for pid in left:   # leave the machine clean even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left, "processes of the killed sweep kept running"
    assert not list((tmp_path / "results").rglob(".*.lock")), "a worker left its lock"


def test_a_slurm_task_on_a_node_without_the_data_reports_its_runs_unavailable_and_records_nothing(tmp_path):
    from mer_bench.sweep.worker import UNAVAILABLE, run_slurm_task
    (tmp_path / "no-data").mkdir()
    specs = [make_spec(get_catalog(), "mean", "mosi", seed, data_sha256="0" * 64) for seed in (1, 2)]
    settings = WorkerSettings(out_dir=tmp_path / "results", data_dir=tmp_path / "no-data", probes=False)
    assert run_slurm_task(specs, settings) == [UNAVAILABLE, UNAVAILABLE]
    assert not any((tmp_path / "results").rglob("*.*"))


def test_unavailable_runs_end_the_sweep_with_one_line_and_exit_2(tmp_path):
    from mer_bench.sweep.worker import UNAVAILABLE
    grid_file = support.write_grid(tmp_path, """
        results = "results"
        datasets = ["synthetic"]
        seeds = [1111]
        [models.mean]
    """)
    grid = load_grid(grid_file, get_catalog())
    with pytest.raises(EnvironmentProblem) as stopped:
        _finish(grid, {grid.specs[0]: UNAVAILABLE}, None)
    assert stopped.value.exit_code == 2 and "nothing was recorded" in str(stopped.value)


def test_a_failure_record_names_where_the_data_came_from(tmp_path, registered_plugin, sims_v2_folder):
    import json as json_module
    from mer_bench.sweep.store import failure_path
    registered_plugin(support, support.PLUGIN_NAME)
    catalog = get_catalog()
    marker = tmp_path / "fail"
    marker.touch()
    checksum = data_checksum(catalog, "sims-v2", sims_v2_folder)
    spec = make_spec(catalog, support.PLUGIN_NAME, "sims-v2", 1, {"fail_marker": str(marker)}, data_sha256=checksum)
    settings = WorkerSettings(out_dir=tmp_path / "results", data_dir=sims_v2_folder, probes=False)
    assert execute_run(spec, settings) == FAILED
    record = json_module.loads(failure_path(spec, tmp_path / "results").read_text())
    assert f"--data-dir {sims_v2_folder.resolve()}" in record["command"]


@pytest.fixture
def sims_v2_folder(tmp_path, monkeypatch):
    import pickle
    from mer_bench.data.synthetic import generate_raw
    monkeypatch.setenv("MER_BENCH_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "data"
    target = folder / get_catalog().dataset("sims-v2").value.relative_paths[0]
    target.parent.mkdir(parents=True)
    target.write_bytes(pickle.dumps(generate_raw("sims-v2", (24, 12, 12), 0), protocol=4))
    return folder
