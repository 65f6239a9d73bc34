"""The aligned-input baselines (mfn, mctn, mfm, graph-mfn) end to end: on the synthetic dataset, which the harness
aligns, each must beat the mean predictor's test MAE by 10 %; on an aligned file (`generate_raw(aligned=True)`,
MMSA's aligned layout without lengths) each runs as the dataset `mosi-aligned` and records the native alignment.
Then each model's own parts on a tiny random batch: padding past a sample's length is never read, MCTN predicts from
the text alone and trains on its three translations, MFM's loss terms, Graph-MFN's graph networks all trained.

Measured on two busy CPU cores, seed 1111: mfn 8 epochs about 9 s, test MAE 0.27 against the mean predictor's 0.49;
mctn 3 epochs 11 s of CPU, 0.336; mfm 5 epochs 8 s, 0.342; graph-mfn 4 epochs 6 s, 0.322 (mean predictor 0.51 in
that run); the aligned-file runs (1 epoch, smoke sizes) about 1 s each, the part tests 16 s together.
"""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import torch

from mer_bench.data.align import NATIVE, SEGMENT_MEAN
from mer_bench.data.builtin import synthetic_spec
from mer_bench.data.synthetic import generate_raw
from mer_bench.model import DataInfo, build_config
from mer_bench.plugins import get_catalog
from mer_bench.results import read_result
from mer_bench.runner import RunOptions, data_checksum, make_spec, run_many, run_one
from mer_bench_baselines.common import Inputs
from mer_bench_baselines.mfm import mmd_to_normal

SEED = 1111
ALIGNED_MODELS = ("mfn", "mctn", "mfm", "graph-mfn")
EPOCHS = {"mfn": 5, "mctn": 3, "mfm": 5, "graph-mfn": 4}
BEATS_MEAN_BY = 0.9      # a working model's test MAE is at most 90 % of the mean predictor's


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_spec(name="synthetic").generate()


def run_and_score(model: str, data, out_dir, epochs: int) -> dict:
    catalog = get_catalog()
    spec = make_spec(catalog, model, "synthetic", SEED, epochs=epochs)
    outcome = run_one(spec, data, RunOptions(out_dir=out_dir, device="cpu", probes=False), catalog)
    return read_result(outcome.path).to_json_dict()


@pytest.fixture(scope="module")
def mean_mae(synthetic, tmp_path_factory):
    result = run_and_score("mean", synthetic, tmp_path_factory.mktemp("results"), 1)
    return result["metrics"]["test"]["all"]["regression"]["mae"]


@pytest.mark.slow
@pytest.mark.parametrize("model", ALIGNED_MODELS)
def test_aligned_baseline_beats_the_mean_predictor(model, synthetic, mean_mae, tmp_path):
    result = run_and_score(model, synthetic, tmp_path, EPOCHS[model])
    mae = result["metrics"]["test"]["all"]["regression"]["mae"]
    assert result["dataset"]["alignment"] == SEGMENT_MEAN
    assert mae < BEATS_MEAN_BY * mean_mae, f"{model}: test MAE {mae:.3f} vs mean predictor {mean_mae:.3f}"


def setting_text(value) -> str:
    """How `--set` spells a value: tuples as comma-separated items."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


@pytest.fixture(scope="module")
def aligned_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "aligned_50.pkl"
    path.write_bytes(pickle.dumps(generate_raw("mosi", (32, 16, 16), 5, aligned=True), protocol=4))
    return path


@pytest.mark.parametrize("model", ALIGNED_MODELS)
def test_aligned_baseline_runs_on_an_aligned_file(model, aligned_file, tmp_path):
    catalog = get_catalog()
    settings = {key: setting_text(value) for key, value in catalog.model(model).value.smoke_settings.items()}
    spec = make_spec(catalog, model, "mosi-aligned", SEED, settings=settings, epochs=1,
                     data_sha256=data_checksum(catalog, "mosi-aligned", None, aligned_file))
    (outcome,) = run_many([spec], RunOptions(out_dir=tmp_path, data_file=aligned_file, device="cpu", probes=False),
                          catalog)
    result = outcome.result
    assert result.dataset["alignment"] == NATIVE and result.dataset["name"] == "mosi-aligned"
    assert len(result.predictions["score"]) == 16


# --- the parts of each model, on a tiny random aligned batch ----------------------------------------------------------

TINY_DIMS = (12, 5, 7)      # (text, audio, vision) feature sizes
TINY_LENGTH = 6


def tiny_model(name: str):
    """A model of the registered class at its smoke sizes, seeded, for a tiny aligned batch."""
    model_class = get_catalog().model(name).value
    info = DataInfo(dataset="mosi-aligned", style="mosi", feature_dims=TINY_DIMS, seq_lens=(TINY_LENGTH,) * 3,
                    has_unimodal_labels=False, text_model="bert-base-uncased", aligned=True)
    torch.manual_seed(0)
    return model_class(build_config(model_class, info, model_class.smoke_settings), info)


def tiny_batch(lengths: list[int], seed: int = 1) -> Inputs:
    """Random aligned inputs, (B, TINY_LENGTH, D*); every step past a sample's length filled with noise too."""
    generator = torch.Generator().manual_seed(seed)
    batch = len(lengths)
    draw = lambda dim: torch.randn(batch, TINY_LENGTH, dim, generator=generator)  # noqa: E731
    steps = torch.tensor(lengths)
    return Inputs(index=torch.arange(batch), label=torch.randn(batch, generator=generator), text=draw(TINY_DIMS[0]),
                  text_ids=None, text_lengths=steps, audio=draw(TINY_DIMS[1]), audio_lengths=steps,
                  vision=draw(TINY_DIMS[2]), vision_lengths=steps)


def scores(model, inputs: Inputs) -> torch.Tensor:
    model.network.eval()
    with torch.no_grad():
        return model.forward(inputs)["score"]


@pytest.mark.parametrize("model", ALIGNED_MODELS)
def test_steps_past_a_samples_length_change_nothing(model):
    network = tiny_model(model)
    inputs = tiny_batch([3, TINY_LENGTH])
    cut = dataclasses.replace(inputs, text=inputs.text[:, :3], audio=inputs.audio[:, :3], vision=inputs.vision[:, :3],
                              text_lengths=torch.tensor([3, 3]), audio_lengths=torch.tensor([3, 3]),
                              vision_lengths=torch.tensor([3, 3]))
    torch.testing.assert_close(scores(network, inputs)[0], scores(network, cut)[0])


def test_mctn_predicts_from_the_text_alone_and_trains_on_all_three_translations():
    model = tiny_model("mctn")
    inputs = tiny_batch([TINY_LENGTH] * 4)
    other = tiny_batch([TINY_LENGTH] * 4, seed=2)
    swapped = dataclasses.replace(inputs, audio=other.audio, vision=other.vision)
    torch.testing.assert_close(scores(model, inputs), scores(model, swapped))
    model.network.train()
    outputs = model.forward(inputs)
    loss = model.training_loss(inputs, outputs, 1)
    translation = outputs["vision_error"] + outputs["text_error"] + outputs["audio_error"]
    torch.testing.assert_close(loss, torch.nn.functional.l1_loss(outputs["score"], inputs.label) + 0.1 * translation)
    loss.backward()      # the decoders learn only from the translation losses: they must get gradients
    assert model.network.joint_to_audio.decoder.out.weight.grad.abs().sum() > 0
    assert model.network.text_to_vision.decoder.out.weight.grad.abs().sum() > 0


def test_mfm_mmd_measures_the_distance_from_a_standard_normal():
    torch.manual_seed(0)
    normal, shifted = mmd_to_normal(torch.randn(200, 8)), mmd_to_normal(torch.randn(200, 8) + 3.0)
    assert normal < 0.01 < shifted


def test_mfm_training_loss_adds_the_reconstruction_and_the_weighted_mmd():
    model = tiny_model("mfm")
    inputs = tiny_batch([TINY_LENGTH, 4, 2])
    model.network.train()
    outputs = model.forward(inputs)
    assert outputs["reconstruction"] > 0 and outputs["mmd"] > 0
    expected = (torch.nn.functional.l1_loss(outputs["score"], inputs.label) + outputs["reconstruction"]
                + model.config.lda_mmd * outputs["mmd"])
    torch.testing.assert_close(model.training_loss(inputs, outputs, 1), expected)


def test_graph_mfn_trains_every_network_of_its_fusion_graph():
    model = tiny_model("graph-mfn")
    inputs = tiny_batch([TINY_LENGTH, 4, 2])
    model.network.train()
    model.training_loss(inputs, model.forward(inputs), 1).backward()
    graph = model.network.graph
    assert len(graph.vertices) == 4 and graph.efficacy[-1].out_features == 19    # 2 + 2 + 2 + 6 edges, 7 into tau
    untrained = [name for name, p in graph.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not untrained
