"""Grid files: expansion into runs, errors that name the file and the key, and `sweep plan`."""

from __future__ import annotations

import json

import pytest

from mer_bench.cli import main
from mer_bench.plugins import get_catalog
from mer_bench.runner import RunOptions, data_checksum, make_spec, run_many
from mer_bench.sweep.grid import GridError, load_grid
from mer_bench.sweep.store import RunLock, lock_path, write_failure
from tests import test_sweep_support as support


@pytest.fixture
def catalog(registered_plugin):
    registered_plugin(support, support.PLUGIN_NAME)
    return get_catalog()


def test_grid_runs_every_combination_as_mer_bench_run_would(tmp_path, catalog):
    path = support.write_grid(tmp_path, """
        results = "out"
        datasets = ["synthetic"]
        seeds = [1, 2]
        [models.sweep-probe]
        grid = { setting = [0, 1, 2], delay = [0, 0.5] }
        settings = { fail_marker = "" }
        [models.mean]
        seeds = [7]
        epochs = 3
    """)
    grid = load_grid(path, catalog)
    assert len(grid.specs) == 3 * 2 * 2 + 1 and len(set(grid.specs)) == len(grid.specs)
    # TOML's integer 0 for a float setting must name the same run as `mer-bench run --set delay=0`; and the run's
    # data is named by its checksum, as `mer-bench run` names it.
    checksum = data_checksum(catalog, "synthetic")
    same_as_cli = make_spec(catalog, "sweep-probe", "synthetic", 2, {"setting": "1", "delay": "0", "fail_marker": ""},
                            data_sha256=checksum)
    assert same_as_cli in grid.specs
    assert make_spec(catalog, "mean", "synthetic", 7, {}, None, 3, checksum) == grid.specs[-1]
    assert grid.results == (tmp_path / "out").resolve()
    assert grid.selections == (tmp_path / "out-selections").resolve()


@pytest.mark.parametrize("body, where, problem", [
    ('results = "r"\nmodles = 1\n', "modles", "Did you mean 'models'"),
    ('datasets = ["synthetic"]\nseeds = [1]\n[models.mean]\n', "results", "is missing"),
    ('results = "r"\ndatasets = ["synthetic"]\nseeds = [1]\n[models.sweep-probe.grid]\nsetting = 3\n',
     "models.sweep-probe.grid.setting", "non-empty list"),
    ('results = "r"\ndatasets = ["synthetic"]\nseeds = [1]\n[models.sweep-probe.grid]\nsettin = [1]\n',
     "models.sweep-probe", "Did you mean 'setting'?"),
    ('results = "r"\ndatasets = ["synthetic"]\nseeds = [1]\n[models.sweep-probe.grid]\nsetting = [1, "x"]\n',
     "models.sweep-probe", "cannot read 'x' as int"),
    ('results = "r"\ndatasets = ["synthetic"]\nseeds = [1]\n[models.meen]\n', "models.meen", "Unknown model 'meen'"),
    ('results = "r"\ndatasets = ["synthetix"]\nseeds = [1]\n[models.mean]\n', "models.mean", "'synthetic'"),
    ('results = "r"\ndatasets = ["synthetic"]\nseeds = ["a"]\n[models.mean]\n', "seeds", "list of integers"),
    ('results = "r"\ndatasets = ["synthetic"]\nseeds = [4294967296]\n[models.mean]\n', "seeds", "0 to 4294967295"),
    ('results = "r"\ndatasets = ["synthetic"]\nseeds = [-1]\n[models.mean]\n', "seeds", "0 to 4294967295"),
    ('results = "r"\ndatasets = ["synthetic"]\nseeds = [1]\nepochs = 0\n[models.mean]\n', "epochs", "positive"),
    ('results = "r"\ndatasets = ["synthetic"]\nseeds = [1]\n[models.mean]\ntext_mode = "raw"\n',
     "models.mean.text_mode", "not a text mode"),
    ('results = "r"\ndatasets = ["synthetic"]\n[models.mean]\n', "seeds", "no seeds for model 'mean'"),
    ('results = \n', None, "not valid TOML"),
])
def test_grid_file_errors_name_the_file_and_the_key(tmp_path, catalog, body, where, problem):
    path = support.write_grid(tmp_path, body)
    with pytest.raises(GridError) as raised:
        load_grid(path, catalog)
    message = str(raised.value)
    assert message.startswith(f"{path}: {where + ':' if where else ''}"), message
    assert problem in message


def test_sweep_command_reports_a_bad_grid_file_on_one_line(tmp_path, catalog, capsys):
    path = support.write_grid(tmp_path, 'results = "r"\nmodles = 1\n')
    with pytest.raises(SystemExit) as exited:
        main(["sweep", "plan", str(path)])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "modles" in error


def test_plan_counts_every_state_and_estimates_from_finished_runs(tmp_path, catalog, capsys):
    path = support.write_grid(tmp_path, """
        results = "out"
        datasets = ["synthetic"]
        seeds = [1, 2, 3, 4]
        probes = false
        [models.mean]
    """)
    grid = load_grid(path, catalog)
    done, failed, running, remaining = grid.specs
    finished = run_many([done], RunOptions(out_dir=grid.results, probes=False))[0].result
    write_failure(failed, grid.results, ValueError("no luck"), started=0.0)
    lock = RunLock(lock_path(running, grid.results))
    assert lock.acquire()
    try:
        with pytest.raises(SystemExit) as exited:
            main(["sweep", "plan", str(path), "--json"])
    finally:
        lock.release()
    assert exited.value.code == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["counts"] == {"done": 1, "failed": 1, "running": 1, "remaining": 1}
    states = {run["run_id"]: run for run in plan["run_list"]}
    assert states[failed.run_id]["error"] == "ValueError: no luck"
    assert states[remaining.run_id]["state"] == "remaining"
    # One run left, estimated from the one finished run of the same model and dataset.
    assert plan["remaining_seconds"] == pytest.approx(finished.timings["total"])
