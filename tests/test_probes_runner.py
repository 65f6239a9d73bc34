"""Probes through the runner and the CLI: on by default, in the result file, off with --no-probes, test data only."""

from __future__ import annotations

import json

import pytest

from mer_bench.cli import main
from mer_bench.hookspecs import hookimpl
from mer_bench.model import Model, Predictions
from mer_bench.plugins import get_catalog
from mer_bench.runner import RunOptions, make_spec, run_many

TOP_LEVEL_KEYS = {"version", "track", "metric", "seed", "text_reliance_share", "follows_text_rate", "robustness_auc",
                  "clean", "ablation", "reliance_share", "robustness", "conflict", "text_inputs", "non_finite",
                  "cost"}


class SplitRecorder(Model):
    """Reads the text features; records the ids of every split it is shown, and in which phase."""

    name = "split-recorder-test"
    calls: list[tuple[str, frozenset[str]]] = []

    def fit(self, train, valid, ctx):
        SplitRecorder.calls.append(("fit", frozenset(train.ids) | frozenset(valid.ids)))

    def predict(self, split):
        SplitRecorder.calls.append(("predict", frozenset(split.ids)))
        return Predictions(score=split.text[:, 1:].mean(dim=(1, 2)) * 10)   # (N,) any function of the text


class RecorderPlugin:
    @hookimpl
    def register_models(self, register):
        register(SplitRecorder)


def test_runner_probes_only_the_test_split_after_the_test_prediction(registered_plugin, tmp_path):
    SplitRecorder.calls = []
    registered_plugin(RecorderPlugin(), "split-recorder")
    catalog = get_catalog()
    spec = make_spec(catalog, "split-recorder-test", "synthetic", 1111)
    outcome = run_many([spec], RunOptions(out_dir=tmp_path), catalog)[0]
    test_ids = set(outcome.result.predictions["ids"])
    calls = SplitRecorder.calls
    assert calls[0][0] == "fit" and not calls[0][1] & test_ids               # fit never sees a test sample
    assert calls[2] == ("predict", frozenset(test_ids))                       # the scored test prediction
    probe_calls = calls[3:]
    assert probe_calls and all(kind == "predict" and ids <= test_ids for kind, ids in probe_calls)
    assert len(probe_calls) == outcome.result.probes["cost"]["predict_calls"]
    assert outcome.result.timings["probes"] > 0


def test_result_file_holds_probes_and_no_probes_leaves_them_null(tmp_path, capsys):
    base = ["run", "mean", "--dataset", "synthetic", "--seeds", "1111"]
    with pytest.raises(SystemExit):
        main([*base, "--out", str(tmp_path / "on")])
    with pytest.raises(SystemExit):
        main([*base, "--out", str(tmp_path / "off"), "--no-probes"])
    capsys.readouterr()
    with_probes = _only_result(tmp_path / "on")
    probes = with_probes["probes"]
    assert set(probes) == TOP_LEVEL_KEYS
    assert probes["version"] == 1 and probes["track"] == "regression" and probes["metric"] == "has0_acc2"
    # A constant predictor relies on nothing: no drop anywhere, so no share, and a flat robustness curve.
    assert probes["text_reliance_share"] is None
    assert probes["robustness_auc"] == pytest.approx(with_probes["metrics"]["test"]["all"]["regression"]["has0_acc2"])
    assert isinstance(probes["follows_text_rate"], float)
    assert "probes" in with_probes["timings"]
    without = _only_result(tmp_path / "off")
    assert without["probes"] is None and "probes" not in without["timings"]


def _only_result(folder):
    (path,) = folder.rglob("*.json")
    return json.loads(path.read_text())


def test_probe_results_survive_the_json_round_trip():
    """Every value in the probe dict is JSON-native (floats, ints, strings, lists, dicts, None)."""
    from tests.test_probes import TextFeatureReader, hand_split, probe
    result = probe(TextFeatureReader(), hand_split())
    assert json.loads(json.dumps(result)) == result
    assert len(result["robustness"]["masking"]["has0_acc2"]) == len(result["robustness"]["rates"]) == 5
