"""The CH-SIMS multi-task baselines (mlf-dnn, mtfn, mlmf): dataset check, loss, parameter groups, and end to end.

The end-to-end test trains each model once through the runner on the default synthetic dataset (seed 1111, 12
epochs, 5-7 s each with one torch thread) and asks for the same margin over the mean predictor as the other
baselines (measured test MAE: mlf-dnn 0.240, mtfn 0.231, mlmf 0.264; mean predictor 0.510).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mer_bench.data.builtin import synthetic_spec
from mer_bench.errors import UserError
from mer_bench.model import DataInfo, FitContext, build_config
from mer_bench_baselines.common import Inputs
from mer_bench_baselines.mlf_dnn import MLFDNN
from mer_bench_baselines.mlmf import MLMF
from mer_bench_baselines.mtfn import MTFN
from tests.test_baselines_synthetic import BEATS_MEAN_BY, run_and_score

MODELS = {"mlf-dnn": MLFDNN, "mtfn": MTFN, "mlmf": MLMF}
INFO = DataInfo(dataset="synthetic", style="sims", feature_dims=(768, 25, 35), seq_lens=(20, 40, 30),
                has_unimodal_labels=True, text_model="bert-base-uncased", synthetic=True)
MOSI = DataInfo(dataset="mosi", style="mosi", feature_dims=(768, 5, 20), seq_lens=(50, 375, 500),
                has_unimodal_labels=False, text_model="bert-base-uncased")


@pytest.mark.parametrize("model_class", MODELS.values())
def test_datasets_without_unimodal_labels_are_refused_in_one_line(model_class):
    with pytest.raises(UserError) as refused:
        model_class.check_dataset(MOSI)
    message = str(refused.value)
    assert "\n" not in message and "unimodal" in message and f"'{model_class.single_task}'" in message
    model_class.check_dataset(INFO)


@pytest.mark.parametrize("model_class", MODELS.values())
def test_sims_presets_are_mmsas_and_other_datasets_fall_back_to_them(model_class):
    sims = model_class.default_config(dataclasses.replace(INFO, dataset="sims", synthetic=False))
    assert sims == model_class.Config(**model_class.presets["sims"])
    custom = dataclasses.replace(MOSI, dataset="my-data", has_unimodal_labels=True)
    assert model_class.default_config(custom) == sims


def small_model(model_class, tiny_data):
    config = build_config(model_class, INFO, model_class.smoke_settings)
    model = model_class(config, INFO)
    model.targets = {"train": torch.cat([tiny_data.train.label[:, None], tiny_data.train.unimodal_labels], dim=1)}
    return model


@pytest.mark.parametrize("model_class", MODELS.values())
def test_loss_is_the_weighted_sum_of_the_four_l1_losses(model_class, tiny_data):
    torch.manual_seed(0)
    model = small_model(model_class, tiny_data)
    model.config = dataclasses.replace(model.config, fusion_loss_weight=0.5, text_loss_weight=0.25,
                                       audio_loss_weight=0.0, vision_loss_weight=2.0)
    batch = Inputs.from_split(tiny_data.train, "features", torch.device("cpu")).take(torch.arange(5, 15))
    model.network.eval()
    outputs = model.forward(batch)
    uni = tiny_data.train.unimodal_labels[5:15]                                      # (10, 3) T, A, V
    l1 = lambda output, target: (outputs[output] - target).abs().mean()  # noqa: E731
    expected = 0.5 * l1("score", tiny_data.train.label[5:15]) + 0.25 * l1("score_text", uni[:, 0]) \
        + 2.0 * l1("score_vision", uni[:, 2])     # the audio task has weight 0
    torch.testing.assert_close(model.training_loss(batch, outputs, epoch=1), expected)


@pytest.mark.parametrize("model_class", MODELS.values())
def test_each_parameter_is_optimised_once_with_its_subnetworks_weight_decay(model_class, tiny_data):
    model = small_model(model_class, tiny_data)
    config = dataclasses.replace(model.config, text_weight_decay=0.1, audio_weight_decay=0.2, video_weight_decay=0.3,
                                 weight_decay=0.4)
    model.config = config
    groups = model.parameter_groups()
    ids = [id(p) for group in groups for p in group["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.network.parameters()))
    decay_of = {id(p): group["weight_decay"] for group in groups for p in group["params"]}
    subnets = model.network.subnets
    for module, decay in ((subnets.text_subnet, 0.1), (subnets.audio_subnet, 0.2), (subnets.vision_subnet, 0.3),
                          (model.network.heads, 0.4)):
        assert {decay_of[id(p)] for p in module.parameters()} == {decay}


def test_mlmf_trains_its_rank_weights_and_bias_with_the_factors(tiny_data):
    model = small_model(MLMF, tiny_data)
    lr_of = {id(p): group["lr"] for group in model.parameter_groups() for p in group["params"]}
    assert {lr_of[id(p)] for p in model.network.fusion_parameters()} == {model.config.factor_lr}


def test_fitting_selects_on_the_multitask_validation_loss_and_forgets_the_labels(tiny_data, tmp_path):
    model = MLFDNN(build_config(MLFDNN, INFO, MLFDNN.smoke_settings), INFO)
    model.fit(tiny_data.train, tiny_data.valid, FitContext(torch.device("cpu"), 1, tmp_path, max_epochs=1))
    assert model.targets == {}
    model.targets = {"valid": torch.zeros(len(tiny_data.valid), 4)}
    valid = Inputs.from_split(tiny_data.valid, "features", torch.device("cpu"))
    with torch.no_grad():
        outputs = model.forward(valid)
    weights = torch.tensor([model.config.fusion_loss_weight, model.config.text_loss_weight,
                            model.config.audio_loss_weight, model.config.vision_loss_weight])
    heads = torch.stack([outputs[k].abs().mean() for k in ("score", "score_text", "score_audio", "score_vision")])
    assert model.validation_loss(valid, "l1") == pytest.approx(float((heads * weights).sum()), rel=1e-5)


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_spec(name="synthetic").generate()


@pytest.fixture(scope="module")
def mean_mae(synthetic, tmp_path_factory):
    return run_and_score("mean", synthetic, tmp_path_factory.mktemp("results"))


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_multitask_baseline_beats_the_mean_predictor(model, synthetic, mean_mae, tmp_path):
    mae = run_and_score(model, synthetic, tmp_path)
    assert mae < BEATS_MEAN_BY * mean_mae, f"{model}: test MAE {mae:.3f} vs mean predictor {mean_mae:.3f}"
