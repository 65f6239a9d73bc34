"""Non-finite model outputs fail a run with one clear line; no metric is ever computed on NaN or infinity."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from mer_bench.cli import main
from mer_bench.errors import NonFiniteError, UserError
from mer_bench.hookspecs import hookimpl
from mer_bench.metrics import compute_metrics
from mer_bench.model import FitContext, Model, Predictions, build_config
from mer_bench.plugins import get_catalog
from mer_bench.probes import run_probes
from mer_bench.runner import RunOptions, data_info, make_spec, run_many
from mer_bench.sweep import worker
from mer_bench.sweep.store import failure_path
from mer_bench.sweep.worker import FAILED, WorkerSettings, execute_run
from mer_bench.training import require_finite_loss, seed_everything


class NaNAtModel(Model):
    """Trains without trouble, then predicts NaN for the samples listed in `bad_rows` of every split."""

    name = "nan-at-test"
    outputs = frozenset({"score", "probs"})
    bad_rows = (3,)

    def fit(self, train, valid, ctx):
        pass

    def predict(self, split):
        n = len(split)
        score = torch.zeros(n)
        score[[row for row in self.bad_rows if row < n]] = float("nan")
        return Predictions(score=score, probs=torch.full((n, 3), 1 / 3))


class NaNWithoutAudioModel(Model):
    """Finite on clean inputs, NaN once the audio is emptied (as a model dividing by an audio norm would be)."""

    name = "nan-without-audio-test"
    outputs = frozenset({"score"})

    def fit(self, train, valid, ctx):
        pass

    def predict(self, split):
        energy = split.audio.abs().flatten(1).sum(dim=1)                     # (N,)
        return Predictions(score=torch.tanh(energy) / (energy > 0).float() - 0.5)   # 0/0 -> NaN on silence


class Plugin:
    @hookimpl
    def register_models(self, register):
        register(NaNAtModel)
        register(NaNWithoutAudioModel)


@pytest.fixture
def nan_models(registered_plugin, monkeypatch):
    registered_plugin(Plugin(), "nonfinite-test")
    monkeypatch.setattr(worker, "_catalog", None)        # the sweep worker caches the catalog per process


# --- Predictions.check -------------------------------------------------------------------------------------------

def test_check_names_model_split_count_and_first_sample_id(tiny_data):
    split = tiny_data.valid
    score = torch.zeros(len(split))
    score[[5, 9]] = torch.tensor([float("nan"), float("inf")])
    with pytest.raises(NonFiniteError) as error:
        Predictions(score=score).check(len(split), frozenset({"score"}), "m", split=split)
    message = str(error.value)
    assert "'m'" in message and "2 of 32" in message and "valid split" in message
    assert repr(split.ids[5]) in message and "\n" not in message
    assert isinstance(error.value, UserError)            # one line and exit 2 from the CLI


@pytest.mark.parametrize("field", ["probs", "extras"])
def test_check_covers_probabilities_and_extras(field):
    bad = torch.full((4, 3), 1 / 3)
    bad[2, 1] = float("nan")
    predictions = Predictions(probs=bad) if field == "probs" else Predictions(probs=torch.ones(4, 3),
                                                                              extras={"gates": bad})
    with pytest.raises(NonFiniteError, match="first at sample 2"):
        predictions.check(4, frozenset({"probs"}), "m")


def test_check_can_leave_finiteness_to_the_caller():
    checked = Predictions(score=torch.tensor([float("nan"), 0.0])).check(2, frozenset({"score"}), "m",
                                                                         require_finite=False)
    assert torch.isnan(checked.score[0])


# --- metrics --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("style", ["mosi", "sims"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_metrics_refuse_non_finite_scores(style, bad):
    with pytest.raises(NonFiniteError, match="1 of 3 score values"):
        compute_metrics(style, np.array([0.5, -0.5, 0.0]), score=np.array([0.1, bad, 0.2]))


def test_metrics_refuse_non_finite_probabilities_and_labels():
    with pytest.raises(NonFiniteError, match="probs"):
        compute_metrics("sims", np.zeros(2), probs=np.array([[np.nan, 0.5, 0.5], [0.2, 0.3, 0.5]]))
    with pytest.raises(NonFiniteError, match="labels"):
        compute_metrics("sims", np.array([np.nan, 0.0]), score=np.zeros(2))


# --- a run, a CLI run and a sweep run ---------------------------------------------------------------------------

def test_a_run_with_nan_predictions_fails_and_writes_nothing(nan_models, tmp_path):
    spec = make_spec(get_catalog(), "nan-at-test", "synthetic", 1111)
    with pytest.raises(NonFiniteError, match="on the valid split"):
        run_many([spec], RunOptions(out_dir=tmp_path, probes=False))
    assert not spec.result_path(tmp_path).exists()


def test_diverging_training_is_one_line_and_exit_2_with_no_result(tmp_path, capsys):
    """The issue's example: a learning rate of 1e30 used to print Acc-2 0.35 and exit 0."""
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "lf-dnn", "--dataset", "synthetic", "--seeds", "1", "--epochs", "1", "--no-probes",
              "--set", "learning_rate=1e30", "--threads", "1", "--out", str(tmp_path)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    # Output to a file carries timestamped progress lines before the error; the error itself is one line, the last.
    error = lines[-1]
    assert error.startswith("Error: ") and "lf-dnn" in error and "not finite" in error, lines
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line) for line in lines[:-1]), lines
    assert not any("finished" in line for line in lines), lines
    assert not list(tmp_path.rglob("*.json"))


def test_a_sweep_records_a_non_finite_run_as_failed_not_done(nan_models, tmp_path):
    spec = make_spec(get_catalog(), "nan-at-test", "synthetic", 1111)
    assert execute_run(spec, WorkerSettings(out_dir=tmp_path, probes=False)) == FAILED
    assert not spec.result_path(tmp_path).exists()
    record = json.loads(failure_path(spec, tmp_path).read_text())
    assert record["error"].startswith("NonFiniteError: Model 'nan-at-test' produced non-finite score")


# --- probes -------------------------------------------------------------------------------------------------------

def test_a_probe_condition_with_nan_predictions_is_undefined_not_a_number(nan_models, tiny_data):
    model = NaNWithoutAudioModel(None, data_info(tiny_data, "features"))
    reference = model.predict(tiny_data.test).check(len(tiny_data.test), model.outputs, model.name)
    probes = run_probes(model, tiny_data.test, reference, "sims", seed=1)
    zero_audio = probes["ablation"]["zero"]["audio"]
    assert zero_audio["has0_acc2"] is None and zero_audio["mae"] is None and zero_audio["drop"] is None
    assert probes["ablation"]["zero"]["text"]["has0_acc2"] is not None      # other conditions still scored
    assert probes["reliance_share"]["zero"] is None
    assert probes["robustness"]["masking"]["auc"] is None                    # masks empty the audio of some samples
    assert "zero:audio" in probes["non_finite"] and "zero:text" not in probes["non_finite"]


# --- training losses -------------------------------------------------------------------------------------------------

def test_require_finite_loss_names_model_stage_epoch_and_value():
    require_finite_loss("m", "training", 1, train_loss=0.5)
    with pytest.raises(NonFiniteError, match=r"'m' diverged: stage 2 training loss .* epoch 3 \(train_loss=inf\)"):
        require_finite_loss("m", "stage 2 training", 3, train_loss=float("inf"))


class CountingProgress:
    def __init__(self):
        self.epochs = 0

    def start_stage(self, name, total):
        pass

    def advance(self, **status):
        self.epochs += 1


@pytest.mark.parametrize("model_name,settings", [
    ("lf-dnn", {"learning_rate": 1e30}),
    ("cmc", {"lr": 1e30}),
])
def test_training_stops_at_the_first_non_finite_epoch(model_name, settings, tiny_data, tmp_path):
    model_class = get_catalog().model(model_name).value
    info = data_info(tiny_data, "features")
    config = build_config(model_class, info, {**model_class.smoke_settings, **settings})
    seed_everything(1111)
    model, progress = model_class(config, info), CountingProgress()
    with pytest.raises(NonFiniteError, match=f"'{model_name}' diverged"):
        model.fit(tiny_data.train, tiny_data.valid,
                  FitContext(torch.device("cpu"), 1111, tmp_path, progress=progress, max_epochs=20))
    assert progress.epochs <= 2          # stopped within the first epochs, not after a budget of 20
