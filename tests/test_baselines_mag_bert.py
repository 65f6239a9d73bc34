"""MAG-BERT: the one-line refusal of text mode features, the adaptation gate's arithmetic on a hand-made case, audio
entering BERT before its first layer (embeddings fine-tuned, as MMSA does) and, end to end on the synthetic data
(marked slow), that it beats the mean predictor's test MAE by 10 % on the harness's segment-mean alignment.

Measured on a shared two-core machine (`--threads 1`, seed 1111, synthetic preset, the random-init small BERT that
generated data use): mag-bert 17 s wall beside three other jobs, test MAE 0.419 against the mean predictor's 0.510;
the test below runs the same, as `mer-bench run mag-bert --dataset synthetic` does.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch.nn import functional as F

from mer_bench.data.align import align_split
from mer_bench.data.builtin import synthetic_spec
from mer_bench.errors import UserError
from mer_bench.model import build_config
from mer_bench.plugins import get_catalog
from mer_bench.results import read_result
from mer_bench.runner import RunOptions, data_info, make_spec, run_one
from mer_bench_baselines.common import Inputs
from mer_bench_baselines.mag_bert import MAGBERT, AdaptationGate

BEATS_MEAN_BY = 0.9


def test_mag_bert_refuses_features_in_one_line(tiny_data):
    with pytest.raises(UserError) as error:
        MAGBERT.check_dataset(data_info(tiny_data, "features"))
    assert "--text-mode bert" in str(error.value) and "\n" not in str(error.value)


def hand_made_gate(beta_shift: float) -> AdaptationGate:
    """Hidden 2, audio 1, vision 1: vision gate relu([v - z0, z1]), W_v v = [v, v]; audio gate 1, W_a a = [1, a]."""
    gate = AdaptationGate(hidden=2, audio_in=1, vision_in=1, beta_shift=beta_shift, dropout=0.0)
    with torch.no_grad():
        for layer in (gate.gate_vision, gate.gate_audio, gate.project_vision, gate.project_audio):
            layer.weight.zero_(), layer.bias.zero_()
        gate.gate_vision.weight.copy_(torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]]))   # input [v; z0; z1]
        gate.gate_audio.bias.fill_(1.0)
        gate.project_vision.weight.fill_(1.0)
        gate.project_audio.weight.copy_(torch.tensor([[0.0], [1.0]]))
        gate.project_audio.bias.copy_(torch.tensor([1.0, 0.0]))
    return gate.eval()


def test_gate_shifts_each_embedding_by_its_gated_capped_displacement():
    words, vision, audio = torch.tensor([[[3.0, 4.0]]]), torch.tensor([[[2.0]]]), torch.tensor([[[3.0]]])  # (1, 1, *)
    gate = hand_made_gate(beta_shift=1.0)
    # vision: relu([2 - 3, 4]) * [2, 2] = [0, 8]; audio: [1, 1] * [1, 3]; H = [1, 11]
    shift = gate.displacement(words, audio, vision)
    assert shift.tolist() == [[[1.0, 11.0]]]
    alpha = 5.0 / (math.sqrt(122.0) + 1e-6)             # ||z|| / ||H||, below the cap of 1
    assert gate.scale(words, shift).item() == pytest.approx(alpha)
    expected = F.layer_norm(words + alpha * shift, (2,))
    assert torch.allclose(gate(words, audio, vision), expected)
    assert hand_made_gate(beta_shift=10.0).scale(words, shift).item() == 1.0   # capped: the shift at most whole


def test_gate_leaves_the_embedding_alone_when_the_displacement_is_zero():
    gate = hand_made_gate(beta_shift=1.0)
    with torch.no_grad():
        gate.project_vision.weight.zero_(), gate.project_audio.weight.zero_(), gate.project_audio.bias.zero_()
    words = torch.tensor([[[3.0, 4.0]]])
    out = gate(words, torch.ones(1, 1, 1), torch.ones(1, 1, 1))
    assert torch.isfinite(out).all() and torch.allclose(out, F.layer_norm(words, (2,)))


def test_mag_bert_reads_audio_before_bert_and_fine_tunes_the_embeddings(tiny_data, tiny_bert_dir):
    info = data_info(tiny_data, "bert")
    model = MAGBERT(build_config(MAGBERT, info, {**MAGBERT.smoke_settings, "bert_model": str(tiny_bert_dir)}), info)
    batch = Inputs.from_split(align_split(tiny_data.train), "bert", torch.device("cpu")).take(torch.arange(8))
    model.network.eval()
    score = model.network(batch)["score"]                                   # (8,)
    silent = dataclasses.replace(batch, audio=torch.zeros_like(batch.audio))
    assert not torch.allclose(score, model.network(silent)["score"])
    score.sum().backward()
    assert model.network.text_input.bert.embeddings.word_embeddings.weight.grad is not None
    unaligned = Inputs.from_split(tiny_data.train, "bert", torch.device("cpu")).take(torch.arange(8))
    with pytest.raises(UserError, match="one audio and vision step per token"):
        model.network(unaligned)


@pytest.mark.slow
def test_mag_bert_beats_the_mean_predictor_on_aligned_synthetic_data(tmp_path):
    data, catalog = synthetic_spec(name="synthetic").generate(), get_catalog()

    def run(model, text_mode=None, settings=None):
        spec = make_spec(catalog, model, "synthetic", 1111, settings=settings, text_mode=text_mode)
        return read_result(run_one(spec, data, RunOptions(out_dir=tmp_path / model, device="cpu", probes=False),
                                   catalog).path)

    mean = run("mean").metrics["test"]["all"]["regression"]["mae"]
    result = run("mag-bert")                          # text mode bert by default, on the dataset's random-init BERT
    mae = result.metrics["test"]["all"]["regression"]["mae"]
    assert result.dataset["alignment"] == "segment-mean" and result.model["bert"] == "random-init:small-bert"
    assert mae < BEATS_MEAN_BY * mean, f"mag-bert: test MAE {mae:.3f} vs mean predictor {mean:.3f}"
