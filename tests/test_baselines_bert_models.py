"""MMIM, ALMT and CENET: their training rules (MMIM's two stages and entropy memory, ALMT's schedule, CENET's text
mode and injection) and, end to end on the synthetic data (marked slow), that each beats the mean predictor.

Measured on a shared two-core machine (`--threads 1`, seed 1111, default epochs): mmim 12 s, almt 33 s (wall; 14 s
CPU), cenet 12 s (wall, beside three other jobs) in text mode bert on the random-init small BERT that generated data
use; test MAE 0.323, 0.298 and 0.369 against the mean predictor's 0.51. The end-to-end tests below run the same, as
`mer-bench run NAME --dataset synthetic` does (about 40 s of CPU together).
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from mer_bench.bert import tiny_bert_config
from mer_bench.data.builtin import synthetic_spec
from mer_bench.errors import UserError
from mer_bench.model import FitContext, build_config
from mer_bench.plugins import get_catalog
from mer_bench.results import read_result
from mer_bench.runner import RunOptions, data_info, make_spec, run_one
from mer_bench_baselines.almt import warmup_cosine
from mer_bench_baselines.cenet import CENET
from mer_bench_baselines.common import Inputs
from mer_bench_baselines.mmim import MMIM, EntropyMemory, _log_det_spread
from mer_bench_baselines.training_loop import LoopSettings

BEATS_MEAN_BY = 0.9


@pytest.fixture(scope="module")
def two_layer_bert_dir(tmp_path_factory):
    """A tiny random BERT with two layers, so CENET's default injection before layer 1 has a layer to feed."""
    from transformers import BertModel

    torch.manual_seed(0)
    config = tiny_bert_config()
    config.num_hidden_layers = 2
    directory = tmp_path_factory.mktemp("bert2")
    BertModel(config, add_pooling_layer=False).save_pretrained(directory)
    return directory


def build(model_class, data, text_mode="features", **settings):
    info = data_info(data, text_mode)
    model_class.check_dataset(info)
    return model_class(build_config(model_class, info, {**model_class.smoke_settings, **settings}), info)


# --- ALMT -----------------------------------------------------------------------------------------------------------

def test_almt_schedule_warms_up_from_zero_then_follows_a_cosine():
    assert warmup_cosine(0, 200) == 0.0                  # MMSA's first epoch trains at learning rate 0
    assert warmup_cosine(10, 200) == pytest.approx(0.5)
    assert warmup_cosine(20, 200) == pytest.approx(1.0)
    assert warmup_cosine(21, 200) == pytest.approx(1.0)  # the cosine starts at the peak
    assert warmup_cosine(21 + 90, 200) == pytest.approx(0.5)
    assert warmup_cosine(21 + 180, 200) == pytest.approx(0.0, abs=1e-12)


def test_almt_sets_each_epochs_learning_rate(tiny_data):
    model = build(get_catalog().model("almt").value, tiny_data, schedule_epochs=10, learning_rate=1e-3)
    optimizer = model.make_optimizer()
    assert isinstance(optimizer, torch.optim.AdamW)
    train = Inputs.from_split(tiny_data.train, "features", torch.device("cpu")).take(torch.arange(4))
    settings = model.loop_settings()
    # 10 epochs: warm-up over 1 (epoch 1 at 0, epoch 2 at the peak), the cosine from epoch 3 over 9
    for epoch, factor in ((1, 0.0), (2, 1.0), (3, 1.0), (4, math.cos(math.pi / 9) / 2 + 0.5)):
        model._train_epoch(train, optimizer, settings, torch.Generator().manual_seed(0), epoch, torch.device("cpu"))
        assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * factor)
    assert settings.valid_loss == "mse"


# --- MMIM -----------------------------------------------------------------------------------------------------------

def test_mmim_entropy_starts_after_the_memory_fills_and_uses_the_remembered_batch(tiny_data):
    model = build(MMIM, tiny_data, d_vout=8, d_aout=8)
    network, batch = model.network, Inputs.from_split(tiny_data.train, "features", torch.device("cpu")).take(
        torch.arange(32))
    memory = EntropyMemory(size=1)
    with torch.no_grad():
        outputs = network(batch)
        assert memory.entropy(network, outputs, batch.label) == 0          # batch 0: memory empty
        assert memory.entropy(network, outputs, batch.label) == 0          # batch 1: MMSA skips it too
        value = memory.entropy(network, outputs, batch.label)
    expected = 0.0
    for pair in ("tv", "ta"):
        projected = network.mmilb[pair].entropy_prj(outputs[f"vector_{pair[1]}"])
        for kind in (batch.label > 0, batch.label < 0):
            expected += 0.25 * float(_log_det_spread(torch.cat([projected[kind], projected[kind]])))
    assert float(value) == pytest.approx(expected, rel=1e-5) and float(value) != 0


def test_mmim_log_det_is_zero_when_too_few_samples_span_the_space():
    assert float(_log_det_spread(torch.randn(3, 4))) == 0.0     # singular covariance: MMSA gives -inf
    assert math.isfinite(float(_log_det_spread(torch.randn(20, 4))))


def test_mmim_stage_one_trains_only_the_estimators_and_stage_two_the_rest(tiny_data):
    model = build(MMIM, tiny_data)
    train = Inputs.from_split(tiny_data.train, "features", torch.device("cpu"))
    model.on_fit_start(train, FitContext(torch.device("cpu"), 0, None))
    before = {name: p.detach().clone() for name, p in model.network.named_parameters()}
    model._train_mmilb(train, LoopSettings(batch_size=16, max_epochs=1), torch.Generator().manual_seed(0))
    changed = {name for name, p in model.network.named_parameters() if not torch.equal(p, before[name])}
    assert changed and all(name.startswith("mmilb.") for name in changed)
    main = {id(p) for group in model.parameter_groups() for p in group["params"]}
    assert not main & {id(p) for p in model.network.mmilb.parameters()}
    assert all(p.grad is None for p in model.network.parameters())          # nothing carried into stage 2
    assert model.loop_settings().plateau_factor == 0.5


def test_mmim_refuses_vectors_too_small_for_the_entropy_projection(tiny_data):
    with pytest.raises(UserError, match="at least 4"):
        build(MMIM, tiny_data, d_vout=3)


# --- CENET ----------------------------------------------------------------------------------------------------------

def test_cenet_refuses_features_in_one_line(tiny_data):
    with pytest.raises(UserError) as error:
        CENET.check_dataset(data_info(tiny_data, "features"))
    assert "--text-mode bert" in str(error.value) and "\n" not in str(error.value)


def test_cenet_needs_a_layer_after_the_injection_point(tiny_data, tiny_bert_dir):
    with pytest.raises(UserError, match="at most 0"):
        build(CENET, tiny_data, "bert", bert_model=str(tiny_bert_dir), injection_layer=1)


def test_cenet_reads_audio_inside_bert_and_never_trains_the_embeddings(tiny_data, two_layer_bert_dir):
    model = build(CENET, tiny_data, "bert", bert_model=str(two_layer_bert_dir), injection_layer=1)
    batch = Inputs.from_split(tiny_data.train, "bert", torch.device("cpu")).take(torch.arange(8))
    model.network.eval()
    score = model.network(batch)["score"]
    silent = dataclasses.replace(batch, audio=torch.zeros_like(batch.audio))
    assert not torch.allclose(score, model.network(silent)["score"])
    score.sum().backward()
    embeddings = model.network.text_input.bert.embeddings
    assert all(p.grad is None for p in embeddings.parameters())
    assert model.network.enhance.cat_connect.weight.grad is not None
    eps = {group["eps"] for group in model.parameter_groups()}
    assert eps == {model.config.adam_epsilon}


# --- end to end -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synthetic():
    return synthetic_spec(name="synthetic").generate()


def test_the_three_models_are_registered():
    assert {"mmim", "almt", "cenet"} <= set(get_catalog().models)


def run_and_score(model: str, data, out_dir, text_mode=None, settings=None) -> float:
    catalog = get_catalog()
    # default epochs (30 on synthetic, early stopping): the budget the measured CLI runs above used
    spec = make_spec(catalog, model, "synthetic", 1111, settings=settings, text_mode=text_mode)
    outcome = run_one(spec, data, RunOptions(out_dir=out_dir, device="cpu", probes=False), catalog)
    return read_result(outcome.path).metrics["test"]["all"]["regression"]["mae"]


@pytest.fixture(scope="module")
def mean_mae(synthetic, tmp_path_factory):
    return run_and_score("mean", synthetic, tmp_path_factory.mktemp("mean"))


@pytest.mark.slow
@pytest.mark.parametrize("model,text_mode", [("mmim", "features"), ("almt", "features"), ("cenet", "bert")])
def test_beats_the_mean_predictor(model, text_mode, synthetic, mean_mae, tmp_path):
    mean = mean_mae
    mae = run_and_score(model, synthetic, tmp_path / model, text_mode)   # bert: the dataset's random-init BERT
    assert mae < BEATS_MEAN_BY * mean, f"{model}: test MAE {mae:.3f} vs mean predictor {mean:.3f}"
