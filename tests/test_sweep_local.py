"""The local executor end to end: two worker processes, interrupted and resumed; failures recorded and retried."""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from mer_bench.cli import main
from mer_bench.plugins import get_catalog
from mer_bench.results import read_result
from mer_bench.sweep.grid import load_grid
from mer_bench.sweep.store import failure_path
from tests import test_sweep_support as support


@pytest.fixture
def catalog(registered_plugin):
    registered_plugin(support, support.PLUGIN_NAME)
    return get_catalog()


@pytest.fixture
def plugin_env(tmp_path):
    return support.install_probe_plugin(tmp_path / "site")


def result_files(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*.json") if not path.name.startswith(".")}


def wait_for_results(folder: Path, count: int, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while len(result_files(folder)) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the sweep made no progress"
        time.sleep(0.1)


def test_an_interrupted_sweep_resumes_and_ends_with_exactly_its_result_files(tmp_path, catalog, plugin_env):
    grid_file = support.write_grid(tmp_path, """
        results = "results"
        datasets = ["synthetic"]
        seeds = [1111, 1112, 1113, 1114]
        probes = false
        [models.sweep-probe]
        grid = { setting = [0, 1] }
        settings = { delay = 1.0 }
    """)
    expected = {spec.result_path(tmp_path / "results") for spec in load_grid(grid_file, catalog).specs}
    assert len(expected) == 8
    sweep = subprocess.Popen(support.mer_bench_command("sweep", "run", str(grid_file), "--jobs", "2"),
                             env=plugin_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_results(tmp_path / "results", 2, sweep)   # then two runs are in flight and four are queued
    sweep.send_signal(signal.SIGTERM)
    _, err = sweep.communicate(timeout=60)
    assert sweep.returncode == 130, err

    # Stopped part-way: finished runs kept whole, nothing else left behind (no lock, temporary or failure file).
    first_round = support.files_under(tmp_path / "results")
    assert first_round < expected and len(first_round) >= 2, err
    kept = {path: path.stat().st_mtime_ns for path in first_round}
    for path in first_round:
        assert read_result(path).spec.result_path(tmp_path / "results") == path
    assert not list(Path(tempfile.gettempdir()).glob("mer-bench-sweep-probe-synthetic-*")), "scratch folder left"

    resumed = support.run_cli(plugin_env, "sweep", "run", str(grid_file), "--jobs", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(first_round)} done" in resumed.stderr and f"{8 - len(first_round)} to run" in resumed.stderr
    assert support.files_under(tmp_path / "results") == expected
    assert {path: path.stat().st_mtime_ns for path in first_round} == kept, "a finished run was redone"


def test_a_failing_run_is_recorded_does_not_stop_the_sweep_and_is_retried_on_request(tmp_path, catalog, plugin_env,
                                                                                      capsys):
    marker = tmp_path / "fail-now"
    marker.touch()
    grid_file = support.write_grid(tmp_path, f"""
        results = "results"
        datasets = ["synthetic"]
        seeds = [1111]
        probes = false
        [models.sweep-probe]
        grid = {{ fail_marker = ["", "{marker}"] }}
    """)
    healthy, failing = load_grid(grid_file, catalog).specs
    first = support.run_cli(plugin_env, "sweep", "run", str(grid_file), "--jobs", "2")
    assert first.returncode == 1, first.stderr
    assert "1 run(s) failed" in first.stderr and "--retry-failed" in first.stderr
    assert healthy.result_path(grid_file.parent / "results").exists()
    record = json.loads(failure_path(failing, tmp_path / "results").read_text())
    assert record["error"].startswith("RuntimeError: planted failure")
    assert "Traceback" in record["traceback"] and record["command"] == failing.command()

    # Without --retry-failed a failed run stays failed (in process: nothing to train, so no workers start).
    with pytest.raises(SystemExit) as exited:
        main(["sweep", "run", str(grid_file)])
    assert exited.value.code == 0
    assert "1 failed (skipped; --retry-failed reruns them), 0 running elsewhere; 0 to run" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sweep", "plan", str(grid_file), "--json"])
    plan = json.loads(capsys.readouterr().out)
    assert plan["counts"] == {"done": 1, "failed": 1, "running": 0, "remaining": 0}

    marker.unlink()
    retried = support.run_cli(plugin_env, "sweep", "run", str(grid_file), "--retry-failed")
    assert retried.returncode == 0, retried.stderr
    assert support.files_under(tmp_path / "results") == {
        spec.result_path(tmp_path / "results") for spec in (healthy, failing)}
