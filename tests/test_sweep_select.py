"""Selection on the validation split: the configuration with the best validation mean wins, not the test-best."""

from __future__ import annotations

import json

import pytest

from mer_bench.cli import main
from mer_bench.plugins import get_catalog
from mer_bench.results import read_result
from mer_bench.stats import mean_std
from mer_bench.sweep.grid import load_grid
from mer_bench.sweep.select import Criterion, select
from tests import test_sweep_support as support


@pytest.fixture
def catalog(registered_plugin):
    registered_plugin(support, support.PLUGIN_NAME)
    return get_catalog()


def mean_metric(results, split: str) -> float:
    return mean_std([r.metrics[split]["all"]["regression"]["has0_acc2"] for r in results])[0]


def test_selection_picks_the_validation_best_configuration_and_reports_only_its_test_metrics(tmp_path, catalog,
                                                                                             capsys):
    grid_file = support.write_grid(tmp_path, """
        results = "results"
        datasets = ["synthetic"]
        seeds = [1111, 1112]
        probes = false
        [models.sweep-probe.grid]
        setting = [0, 1, 2]
    """)
    env = support.install_probe_plugin(tmp_path / "site")
    swept = support.run_cli(env, "sweep", "run", str(grid_file), "--jobs", "2")
    assert swept.returncode == 0, swept.stderr

    grid = load_grid(grid_file, catalog)
    by_setting = {setting: [read_result(s.result_path(grid.results)) for s in grid.specs
                            if dict(s.overrides)["setting"] == setting] for setting in (0, 1, 2)}
    # The grid is built so that the three possible rules disagree: best single validation run (0), best validation
    # mean over seeds (1), best test mean (2).
    best_single_valid = max(by_setting, key=lambda k: max(r.metrics["valid"]["all"]["regression"]["has0_acc2"]
                                                          for r in by_setting[k]))
    best_valid_mean = max(by_setting, key=lambda k: mean_metric(by_setting[k], "valid"))
    best_test = max(by_setting, key=lambda k: mean_metric(by_setting[k], "test"))
    assert (best_single_valid, best_valid_mean, best_test) == (0, 1, 2)

    with pytest.raises(SystemExit) as exited:
        main(["sweep", "select", str(grid_file)])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert "setting=1" in shown and "0.7500" in shown and "0.5500" in shown and "0.9000" not in shown

    record = json.loads((grid.selections / "synthetic" / "sweep-probe.json").read_text())
    assert record["format"] == "mer-bench selection" and record["criterion"]["split"] == "valid"
    assert record["selected"]["overrides"] == {"setting": 1}
    assert record["selected"]["valid"] == {"mean": 0.75, "std": 0.0, "n": 2}
    assert record["selected"]["run_ids"] == [r.run_id for r in by_setting[1]]
    assert record["selected"]["test"]["all"]["regression"]["has0_acc2"]["mean"] == pytest.approx(0.55)
    for linked in record["selected"]["result_files"]:
        assert read_result(grid.selections / "synthetic" / linked).spec.overrides == (("setting", 1),)
    evidence = {c["overrides"]["setting"]: (c["valid"]["mean"], c["seeds_done"]) for c in record["candidates"]}
    assert evidence == {1: (0.75, 2), 0: (pytest.approx(0.70), 2), 2: (pytest.approx(0.60), 2)}
    assert [c["overrides"]["setting"] for c in record["candidates"]] == [1, 0, 2]   # best first

    # A configuration missing a seed does not compete unless asked: then its one seed stands for it.
    by_setting[1][1].spec.result_path(grid.results).unlink()
    assert dict(select(grid, Criterion())[0].chosen.first.overrides) == {"setting": 0}
    assert dict(select(grid, Criterion(allow_incomplete=True))[0].chosen.first.overrides) == {"setting": 1}
    # A lower-is-better metric is minimised.
    chosen = select(grid, Criterion(metric="mae"))[0]
    assert chosen.chosen.valid["mean"] == min(c.valid["mean"] for c in chosen.candidates if c.complete)
