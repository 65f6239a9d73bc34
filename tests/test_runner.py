"""The runner: the test split reaches a model once, after fit; result files are complete, valid and reproducible."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from mer_bench.hookspecs import hookimpl
from mer_bench.model import Model, Predictions
from mer_bench.plugins import get_catalog
from mer_bench.results import RESULT_SCHEMA, ResultError, read_result, read_results, write_json_atomic
from mer_bench.runner import RunOptions, make_spec, run_many
from mer_bench.runspec import RunSpec


class RecordingModel(Model):
    """Records every split it is shown, in order."""

    name = "recording-test"
    outputs = frozenset({"score", "probs"})
    seen: list[tuple[str, str]] = []

    def fit(self, train, valid, ctx):
        RecordingModel.seen.append(("fit", f"{train.name}+{valid.name}"))

    def predict(self, split):
        RecordingModel.seen.append(("predict", split.name))
        n = len(split)
        return Predictions(score=torch.zeros(n), probs=torch.full((n, 3), 1 / 3), extras={"gates": torch.ones(n, 3)})


class RecordingPlugin:
    @hookimpl
    def register_models(self, register):
        register(RecordingModel)


@pytest.fixture
def recording(registered_plugin):
    RecordingModel.seen = []
    registered_plugin(RecordingPlugin(), "recording")
    return RecordingModel


def run(model, tmp_path, seeds=(1111,), **options):
    catalog = get_catalog()
    specs = [make_spec(catalog, model, "synthetic", seed) for seed in seeds]
    return run_many(specs, RunOptions(out_dir=tmp_path, probes=False, **options), catalog)


def test_test_split_is_predicted_once_after_fit(recording, tmp_path):
    run("recording-test", tmp_path)
    assert recording.seen == [("fit", "train+valid"), ("predict", "valid"), ("predict", "test")]


def test_result_file_layout_and_content(recording, tmp_path):
    outcome = run("recording-test", tmp_path)[0]
    assert outcome.path == tmp_path / "synthetic" / "recording-test" / f"{outcome.spec.run_id}.json"
    data = json.loads(outcome.path.read_text())
    import jsonschema
    jsonschema.validate(data, RESULT_SCHEMA)
    assert data["schema_version"] == 1
    assert data["spec"]["seed"] == 1111 and data["dataset"]["synthetic"] is True
    assert len(data["dataset"]["sha256"]) == 64
    assert set(data["metrics"]["test"]) == {"all", "consistent", "inconsistent", "text-conflict"}
    assert set(data["metrics"]["test"]["all"]) == {"regression", "classification"}
    sizes = data["dataset"]["subsets"]
    assert sizes["consistent"] + sizes["inconsistent"] == data["dataset"]["sizes"]["test"] == 400
    predictions = data["predictions"]
    assert len(predictions["ids"]) == len(predictions["label"]) == len(predictions["score"]) == 400
    assert len(predictions["extras"]["gates"]) == 400 and len(predictions["subsets"]["text-conflict"]) == \
        sizes["text-conflict"]
    for key in ("python", "torch", "mer_bench", "git_commit", "device_name", "plugin"):
        assert key in data["environment"]
    assert set(data["timings"]) >= {"fit", "predict_valid", "predict_test", "total"}
    assert data["command"] == "mer-bench run recording-test --dataset synthetic --seeds 1111"


def test_mean_predictor_metrics_are_computed_not_copied(tmp_path):
    outcome = run("mean", tmp_path)[0]
    labels = torch.tensor(outcome.result.predictions["label"])
    mean = torch.tensor(outcome.result.predictions["score"])[0]
    mae = outcome.result.metrics["test"]["all"]["regression"]["mae"]
    assert mae == pytest.approx(float((labels.clamp(-1, 1) - mean).abs().mean()), abs=1e-6)


def test_spec_hash_is_stable_across_processes():
    spec = RunSpec("cmc", "sims-v2", 1111, (("layers", 2), ("out_dropout", 0.3)), "bert", 5)
    code = ("from mer_bench.runspec import RunSpec; print(RunSpec('cmc', 'sims-v2', 1111, "
            "(('out_dropout', 0.3), ('layers', 2)), 'bert', 5).hash)")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == spec.hash
    assert RunSpec.from_dict(spec.to_dict()) == spec
    assert RunSpec("cmc", "sims-v2", 1112).hash != RunSpec("cmc", "sims-v2", 1111).hash


def test_settings_are_typed_before_hashing(registered_plugin):
    import dataclasses

    @dataclasses.dataclass
    class Config:
        layers: int = 1  # number of layers
        rate: float = 0.5  # a rate

    class Configured(RecordingModel):
        name = "configured-test"

    Configured.Config = Config

    class Plugin:
        @hookimpl
        def register_models(self, register):
            register(Configured)

    registered_plugin(Plugin(), "configured")
    catalog = get_catalog()
    a = make_spec(catalog, "configured-test", "synthetic", 1, {"layers": "02", "rate": "0.50"})
    b = make_spec(catalog, "configured-test", "synthetic", 1, {"rate": ".5", "layers": "2"})
    assert a == b and a.overrides == (("layers", 2), ("rate", 0.5))


def test_text_mode_set_through_settings_goes_to_the_spec():
    spec = make_spec(get_catalog(), "mean", "synthetic", 1, {"text_mode": "bert"})
    assert spec.text_mode == "bert" and spec.overrides == ()


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "r.json"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(json, "dump", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(target, {"a": 1})
    assert list(tmp_path.iterdir()) == []


def test_unreadable_results_are_reported_by_name(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "old.json").write_text(json.dumps({"schema_version": 99}))
    results, problems = read_results([tmp_path])
    assert results == [] and len(problems) == 2
    assert any("broken.json" in str(problem) for problem in problems)
    assert any("schema_version 99" in str(problem) for problem in problems)
    with pytest.raises(ResultError, match="broken.json"):
        read_result(tmp_path / "broken.json")


def test_prediction_arrays_must_cover_every_sample(tmp_path):
    outcome = run("mean", tmp_path)[0]
    data = json.loads(outcome.path.read_text())
    data["predictions"]["score"] = data["predictions"]["score"][:-1]
    broken = tmp_path / "short.json"
    broken.write_text(json.dumps(data))
    with pytest.raises(ResultError, match="'score' must be a list of 400 entries"):
        read_result(broken)
