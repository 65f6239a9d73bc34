"""The baselines' shared building blocks: masks and pooling, packed encoders, alignment, presets, the ULGM, the loop."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mer_bench.data.align import segment_means, text_lengths
from mer_bench.errors import UserError
from mer_bench.model import DataInfo, FitContext
from mer_bench_baselines.common import Inputs, LSTMEncoder, last_valid, masked_mean
from mer_bench_baselines.lf_dnn import LFDNN
from mer_bench_baselines.lmf import LMF
from mer_bench_baselines.self_mm import SelfMM
from mer_bench_baselines.self_mm_labels import UnimodalLabelGenerator
from mer_bench_baselines.tfn import TFN
from mer_bench_baselines.training_loop import preset_key
from mer_bench_baselines.unimodal import UnimodalText

INFO = DataInfo(dataset="synthetic", style="sims", feature_dims=(768, 25, 35), seq_lens=(20, 40, 30),
                has_unimodal_labels=True, text_model="bert-base-uncased", synthetic=True)


def test_masked_mean_and_last_valid_ignore_padding():
    x = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [100.0], [100.0]]])     # (2, 3, 1), 100 = padding
    lengths = torch.tensor([2, 1])
    assert masked_mean(x, lengths).squeeze(-1).tolist() == [2.0, 2.0]
    assert last_valid(x, lengths).squeeze(-1).tolist() == [3.0, 2.0]


def test_segment_means_split_each_valid_span_into_token_slices():
    frames = torch.arange(10.0).view(1, 10, 1).repeat(2, 1, 1)
    out = segment_means(frames, torch.tensor([10, 4]), torch.tensor([3, 2]), out_length=4).squeeze(-1)
    # sample 0: frames [0,3), [3,6), [6,10); sample 1: its 4 valid frames in two halves; zero after the tokens
    torch.testing.assert_close(out, torch.tensor([[1.0, 4.0, 7.5, 0.0], [0.5, 2.5, 0.0, 0.0]]))


def test_packed_lstm_state_does_not_depend_on_padding():
    torch.manual_seed(0)
    encoder = LSTMEncoder(3, 5, num_layers=2, bidirectional=True)
    x = torch.randn(1, 4, 3)
    padded = torch.cat([x, torch.randn(1, 6, 3) * 50], dim=1)                 # garbage after the valid steps
    torch.testing.assert_close(encoder(padded, torch.tensor([4])), encoder(x, torch.tensor([4])))
    assert encoder(x, torch.tensor([4])).shape == (1, 10)


@pytest.mark.parametrize("model_class", [LFDNN, TFN, LMF])
def test_text_subnetwork_applies_no_dropout_as_mmsa(model_class):
    """MMSA's one-layer TextSubNet sets its dropout to 0: the text vector is the same in train and eval mode even
    with a large text dropout configured, while audio still gets its dropout."""
    config = dataclasses.replace(model_class.default_config(INFO),
                                 dropouts=(0.9,) * len(model_class.default_config(INFO).dropouts))
    torch.manual_seed(0)
    subnets = model_class(config, INFO).network.subnets
    inputs = _random_inputs(8)
    train_audio, _, train_text = subnets.train()(inputs)
    eval_audio, _, eval_text = subnets.eval()(inputs)
    torch.testing.assert_close(train_text, eval_text)
    assert not torch.allclose(train_audio, eval_audio)
    assert not any(isinstance(module, torch.nn.Dropout) for module in subnets.text_subnet.modules())


def test_text_lengths_come_from_the_attention_mask(tiny_data):
    split = tiny_data.train
    counts = text_lengths(split)
    assert torch.equal(counts, split.text_bert[:, 1].sum(dim=1).long())
    without_ids = dataclasses.replace(split, text_bert=None)     # features only: count the non-zero rows instead
    assert torch.equal(text_lengths(without_ids), counts)


def test_presets_follow_the_dataset_then_synthetic_then_style():
    presets = {"mosi": {}, "sims": {}, "synthetic": {}}
    assert preset_key(dataclasses.replace(INFO, dataset="mosi", synthetic=False, style="mosi"), presets) == "mosi"
    assert preset_key(INFO, presets) == "synthetic"
    assert preset_key(dataclasses.replace(INFO, dataset="my-data", synthetic=False, style="mosi"), presets) == "mosi"
    assert TFN.default_config(dataclasses.replace(INFO, dataset="sims", synthetic=False)).text_out == 256


def test_tfn_output_stays_inside_the_label_range():
    mosi = dataclasses.replace(INFO, dataset="mosi", style="mosi", synthetic=False)
    model = TFN(dataclasses.replace(TFN.default_config(mosi), hidden_dims=(8, 4, 4), text_out=4), mosi)
    model.network.post_fusion[-1].bias.data.fill_(50.0)                     # saturate the sigmoid
    batch = _random_inputs(4)
    model.network.eval()
    assert torch.allclose(model.network(batch)["score"], torch.full((4,), 3.0))


def test_lmf_trains_its_rank_weights_and_bias():
    """MMSA's LMF optimiser leaves these two tensors out; here they are in the factor group."""
    model = LMF(dataclasses.replace(LMF.default_config(INFO), hidden_dims=(8, 4, 4)), INFO)
    groups = model.parameter_groups()
    in_groups = {id(p) for group in groups for p in group["params"]}
    assert {id(model.network.rank_weights), id(model.network.bias)} <= in_groups
    assert len(in_groups) == len(list(model.network.parameters()))


def test_ulgm_generates_labels_from_where_features_lie():
    torch.manual_seed(0)
    labels = torch.tensor([1.0, 0.8, 0.6, -1.0, -0.8, -0.6])
    generator = UnimodalLabelGenerator(labels, {"fusion": 2, "text": 2, "audio": 2, "vision": 2}, bound=1.0,
                                       exclude_zero=True)
    fused = torch.sign(labels)[:, None] * torch.tensor([1.0, -1.0]) + 0.1 * torch.randn(6, 2)
    text = fused.clone()
    text[0] = -text[0]                                   # sample 0's text feature sits on the negative side
    features = {"fusion": fused, "text": text, "audio": fused, "vision": fused}
    index = torch.arange(6)
    generator.update(features, index, epoch=1)           # epoch 1: features and centres only
    assert torch.equal(generator.labels["text"], labels)
    generator.update(features, index, epoch=2)
    assert generator.labels["text"][0] < 0 < labels[0]    # its generated text label changes polarity
    # a unimodal feature placed exactly like the fused one keeps the multimodal label, with zero loss weight
    torch.testing.assert_close(generator.labels["audio"], labels)
    torch.testing.assert_close(generator.targets("audio", index)[1], torch.zeros(6))
    assert generator.targets("text", index)[1][0] > 0.5
    assert torch.equal(generator.labels["fusion"], labels) and torch.equal(generator.targets("fusion", index)[1],
                                                                           torch.ones(6))
    assert generator.labels["text"].abs().max() <= 1.0    # clipped to [-H, H]


def test_self_mm_pools_text_by_cls_only_when_bert_is_fine_tuned():
    assert SelfMM.default_config(INFO).text_pooling == "mean"
    assert SelfMM.default_config(dataclasses.replace(INFO, text_mode="bert")).text_pooling == "cls"
    with pytest.raises(UserError, match="text_pooling"):
        SelfMM(dataclasses.replace(SelfMM.default_config(INFO), text_pooling="max"), INFO)


def test_fit_keeps_the_epoch_with_the_lowest_validation_loss(tiny_data, tmp_path):
    """Training must restore the best validation state, not the last one."""
    info = dataclasses.replace(INFO, seq_lens=tiny_data.seq_lens)
    config = dataclasses.replace(UnimodalText.default_config(info), hidden_size=8, head_size=8, patience=100)
    model = UnimodalText(config, info)
    losses = []

    class Record:
        def start_stage(self, name, total):
            pass

        def advance(self, **status):
            losses.append(status["valid_loss"])

    model.fit(tiny_data.train, tiny_data.valid, FitContext(torch.device("cpu"), 0, tmp_path, Record(), max_epochs=6))
    assert len(losses) == 6
    valid = Inputs.from_split(tiny_data.valid, "features", torch.device("cpu"))
    assert model.validation_loss(valid, "l1") == pytest.approx(min(losses), abs=1e-6)


def _random_inputs(n: int) -> Inputs:
    generator = torch.Generator().manual_seed(0)
    lengths = lambda top: torch.randint(1, top + 1, (n,), generator=generator)  # noqa: E731
    return Inputs(index=torch.arange(n), label=torch.zeros(n), text=torch.randn(n, 20, 768, generator=generator),
                  text_ids=None, text_lengths=lengths(20), audio=torch.randn(n, 40, 25, generator=generator),
                  audio_lengths=lengths(40), vision=torch.randn(n, 30, 35, generator=generator),
                  vision_lengths=lengths(30))
