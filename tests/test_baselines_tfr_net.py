"""TFR-Net: MMSA's missing-step draw, what a missing step becomes, the reconstruction schedule, clean prediction,
and end to end on synthetic data (seed 1111, 4 epochs, about 25 s with one torch thread on a shared two-core
machine; the baselines' margin over the mean predictor)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mer_bench.data.builtin import synthetic_spec
from mer_bench.errors import UserError
from mer_bench.model import DataInfo, FitContext, build_config
from mer_bench_baselines.common import Inputs, length_mask
from mer_bench_baselines.tfr_net import UNK_ID, TFRNet, kept_steps, missing_masks, with_missing_steps
from tests import test_baselines_synthetic
from tests.test_baselines_synthetic import BEATS_MEAN_BY, run_and_score

INFO = DataInfo(dataset="synthetic", style="sims", feature_dims=(768, 25, 35), seq_lens=(20, 40, 30),
                has_unimodal_labels=True, text_model="bert-base-uncased", synthetic=True)


def test_kept_steps_are_mmsas_draw_and_leave_numpys_global_state_alone():
    valid = length_mask(torch.tensor([5, 3, 6]), 6)
    np.random.seed(7)
    kept = kept_steps(valid, 0.2, 1111)
    assert np.random.uniform() == np.random.RandomState(7).uniform()     # global generator untouched
    np.random.seed(1111)                                                  # MMSA: seed, then one uniform per step
    expected = (np.random.uniform(size=(3, 6)) > 0.2) * valid.numpy()
    assert kept.numpy().tolist() == expected.astype(bool).tolist()


def test_missing_steps_are_valid_and_spare_the_first_and_last_token(tiny_data):
    inputs = Inputs.from_split(tiny_data.train, "features", torch.device("cpu"))
    missing = missing_masks(inputs, (0.5, 0.5, 0.5), 1111)
    rows = torch.arange(len(inputs))
    assert not missing["text"][rows, 0].any() and not missing["text"][rows, inputs.text_lengths - 1].any()
    for name, lengths in (("text", inputs.text_lengths), ("audio", inputs.audio_lengths),
                          ("vision", inputs.vision_lengths)):
        assert not (missing[name] & ~length_mask(lengths, missing[name].shape[1])).any()    # padding never missing
        assert 0.3 < missing[name].sum() / lengths.sum() < 0.55


def test_missing_words_become_unk_ids_or_zero_features_and_frames_zero(tiny_data):
    inputs = Inputs.from_split(tiny_data.train, "bert", torch.device("cpu"))
    features = Inputs.from_split(tiny_data.train, "features", torch.device("cpu"))
    missing = missing_masks(inputs, (0.3, 0.3, 0.3), 1111)
    dropped = with_missing_steps(inputs, missing)
    assert (dropped.text_ids[:, 0][missing["text"]] == UNK_ID).all()
    torch.testing.assert_close(dropped.text_ids[:, 0][~missing["text"]], inputs.text_ids[:, 0][~missing["text"]])
    assert torch.equal(dropped.text_ids[:, 1:], inputs.text_ids[:, 1:])          # attention mask and segments kept
    assert (with_missing_steps(features, missing).text[missing["text"]] == 0).all()
    assert (dropped.audio[missing["audio"]] == 0).all()
    torch.testing.assert_close(dropped.vision[~missing["vision"]], inputs.vision[~missing["vision"]])


def small_model(tiny_data) -> tuple[TFRNet, Inputs]:
    torch.manual_seed(0)
    model = TFRNet(build_config(TFRNet, INFO, TFRNet.smoke_settings), INFO)
    inputs = Inputs.from_split(tiny_data.train, "features", torch.device("cpu"))
    model.on_fit_start(inputs, None)
    return model, inputs.take(torch.arange(8))


def test_reconstruction_counts_from_the_second_epoch(tiny_data):
    model, batch = small_model(tiny_data)
    model.network.train()
    outputs = model.forward(batch)
    task = (outputs["score"] - batch.label).abs().mean()
    assert float(outputs["reconstruction_loss"].detach()) > 0
    torch.testing.assert_close(model.training_loss(batch, outputs, epoch=1), task)
    torch.testing.assert_close(model.training_loss(batch, outputs, epoch=2), task + outputs["reconstruction_loss"])


def test_prediction_reads_the_inputs_as_given(tiny_data):
    model, batch = small_model(tiny_data)
    model.network.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.forward(batch)["score"], model.network(batch)["score"])
        dropped = with_missing_steps(batch, {m: mask[batch.index] for m, mask in model.missing.items()})
        assert not torch.allclose(model.network(dropped)["score"], model.network(batch)["score"])


def test_fit_forgets_the_missing_steps(tiny_data, tmp_path):
    model = TFRNet(build_config(TFRNet, INFO, TFRNet.smoke_settings), INFO)
    model.fit(tiny_data.train, tiny_data.valid, FitContext(torch.device("cpu"), 1, tmp_path, max_epochs=1))
    assert model.missing is None


@pytest.mark.parametrize("setting,value", [("conv1d_kernel_sizes", (2, 5, 3)), ("dst_feature_dim_nheads", (6, 4))])
def test_bad_shapes_are_refused_in_one_line(setting, value):
    config = dataclasses.replace(build_config(TFRNet, INFO, TFRNet.smoke_settings), **{setting: value})
    with pytest.raises(UserError, match=setting) as refused:
        TFRNet(config, INFO)
    assert "\n" not in str(refused.value)


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_spec(name="synthetic").generate()


@pytest.mark.slow
def test_tfr_net_beats_the_mean_predictor(synthetic, tmp_path, monkeypatch):
    monkeypatch.setitem(test_baselines_synthetic.EPOCHS, "tfr-net", 4)    # short: it is far ahead by then
    mean_mae = run_and_score("mean", synthetic, tmp_path / "mean")
    mae = run_and_score("tfr-net", synthetic, tmp_path / "tfr-net")
    assert mae < BEATS_MEAN_BY * mean_mae, f"tfr-net: test MAE {mae:.3f} vs mean predictor {mean_mae:.3f}"
