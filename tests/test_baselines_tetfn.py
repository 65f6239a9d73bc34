"""TETFN: valid-step pooling, the text-enhanced pair, MMSA's parameter groups, and end to end on synthetic data.

The end-to-end test trains once through the runner on the default synthetic dataset (seed 1111, 4 epochs, about
15 s with one torch thread on a shared two-core machine) and asks for the baselines' margin over the mean predictor.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mer_bench.data.builtin import synthetic_spec
from mer_bench.errors import UserError
from mer_bench.model import DataInfo, build_config
from mer_bench_baselines.common import Inputs
from mer_bench_baselines.tetfn import TETFN, masked_max
from tests import test_baselines_synthetic
from tests.test_baselines_synthetic import BEATS_MEAN_BY, run_and_score

INFO = DataInfo(dataset="synthetic", style="sims", feature_dims=(768, 25, 35), seq_lens=(20, 40, 30),
                has_unimodal_labels=True, text_model="bert-base-uncased", synthetic=True)


def small_model() -> TETFN:
    return TETFN(build_config(TETFN, INFO, TETFN.smoke_settings), INFO)


def test_masked_max_reads_valid_steps_only():
    x = torch.tensor([[[1.0], [5.0], [9.0]], [[-3.0], [-2.0], [7.0]]])        # (2, 3, 1)
    assert masked_max(x, torch.tensor([2, 1])).flatten().tolist() == [5.0, -3.0]


def test_padding_does_not_change_a_samples_outputs(tiny_data):
    torch.manual_seed(0)
    model = small_model()
    model.network.eval()
    batch = Inputs.from_split(tiny_data.train, "features", torch.device("cpu")).take(torch.arange(4))
    padded = dataclasses.replace(batch, audio=batch.audio.clone(), vision=batch.vision.clone())
    for name in ("audio", "vision"):     # garbage after each sample's last valid frame
        x, lengths = getattr(padded, name), getattr(padded, f"{name}_lengths")
        x[~(torch.arange(x.shape[1])[None, :] < lengths[:, None])] = 50.0
    with torch.no_grad():
        expected, actual = model.forward(batch), model.forward(padded)
    for key in ("score", "score_text", "score_audio", "score_vision"):
        torch.testing.assert_close(actual[key], expected[key])


def test_each_parameter_is_optimised_once_in_mmsas_groups():
    model = small_model()
    c = model.config
    groups = model.parameter_groups()
    ids = [id(p) for group in groups for p in group["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.network.parameters()))
    settings = {id(p): (group["lr"], group["weight_decay"]) for group in groups for p in group["params"]}
    network = model.network
    for module, expected in ((network.audio_model, (c.learning_rate_audio, c.weight_decay_audio)),
                             (network.video_model, (c.learning_rate_video, c.weight_decay_video)),
                             (network.crossmodal, (c.learning_rate_other, c.weight_decay_other)),
                             (network.project_text, (c.learning_rate_other, c.weight_decay_other)),
                             (network.heads, (c.learning_rate_other, c.weight_decay_other))):
        assert {settings[id(p)] for p in module.parameters()} == {expected}


def test_heads_that_do_not_divide_the_width_are_refused_in_one_line():
    with pytest.raises(UserError, match="nheads") as refused:
        build_config(TETFN, INFO, dict(TETFN.smoke_settings, nheads=3))
    assert "\n" not in str(refused.value)


def test_sims_preset_is_mmsas():
    sims = TETFN.default_config(dataclasses.replace(INFO, dataset="sims", synthetic=False))
    assert (sims.conv1d_kernel_sizes, sims.dst_feature_dims, sims.nheads, sims.learning_rate_other, sims.H) == \
        ((3, 5, 1), 50, 5, 3e-3, 3.0)


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_spec(name="synthetic").generate()


@pytest.mark.slow
def test_tetfn_beats_the_mean_predictor(synthetic, tmp_path, monkeypatch):
    monkeypatch.setitem(test_baselines_synthetic.EPOCHS, "tetfn", 4)      # short: it is far ahead by then
    mean_mae = run_and_score("mean", synthetic, tmp_path / "mean")
    mae = run_and_score("tetfn", synthetic, tmp_path / "tetfn")
    assert mae < BEATS_MEAN_BY * mean_mae, f"tetfn: test MAE {mae:.3f} vs mean predictor {mean_mae:.3f}"
