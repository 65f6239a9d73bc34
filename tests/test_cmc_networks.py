"""CMC's networks match the reference's building blocks, and stage-1 weights reach stage 2 under the right names."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mer_bench.data.builtin import synthetic_spec
from mer_bench.errors import UserError
from mer_bench.model import build_config, parse_overrides
from mer_bench.runner import data_info
from mer_bench_cmc.config import CMCConfig
from mer_bench_cmc.encoders import MODALITIES, PreNormEncoderLayer, run_branch
from mer_bench_cmc.model import CMC, CMCGT
from mer_bench_cmc.networks import CMCNet, UnimodalNet
from mer_bench_cmc.transfer import stage2_key, transferred_state

SMALL = CMCConfig(layers=2, heads=2, embed_dim=8)


def test_encoder_layer_equals_pytorch_pre_norm_layer():
    torch.manual_seed(0)
    ours = PreNormEncoderLayer(8, 2, dropout=0.1, attention_dropout=True).eval()
    reference = nn.TransformerEncoderLayer(8, 2, dim_feedforward=32, norm_first=True).eval()
    assert set(ours.state_dict()) == set(reference.state_dict())
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(5, 7, 8)                                               # (B, L, d)
    expected = reference(x.transpose(0, 1)).transpose(0, 1)                # the reference runs sequence-first
    torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-5)


def test_audio_branch_equals_the_reference_computation():
    torch.manual_seed(0)
    net = UnimodalNet("audio", 6, SMALL).train()
    x = torch.randn(4, 9, 6)
    # Reference: BatchNorm1d on (B, D, L), Conv1d, nn.TransformerEncoder on (L, B, d), mean over time, normalise.
    norm, conv = nn.BatchNorm1d(6).train(), nn.Conv1d(6, 8, 1, bias=False)
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 32, dropout=0.0, norm_first=True), 2,
                                    enable_nested_tensor=False)
    norm.load_state_dict(net.norm_a.state_dict())
    conv.load_state_dict(net.proj_a.state_dict())
    encoder.load_state_dict(net.encoder_a.state_dict())
    for layer in net.encoder_a.layers:                                     # dropout off on both sides
        layer.dropout = layer.attention_dropout = 0.0
    expected = F.normalize(encoder(conv(norm(x.transpose(1, 2))).permute(2, 0, 1)).mean(dim=0), dim=-1)
    torch.testing.assert_close(run_branch(net, "audio", x, None), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(net.norm_a.running_mean, norm.running_mean)   # same statistics, padding included


def test_masked_pooling_ignores_padding():
    torch.manual_seed(0)
    net = UnimodalNet("vision", 3, SMALL).eval()
    x = torch.randn(1, 6, 3)
    lengths = torch.tensor([4])
    padded = torch.cat([x[:, :4], torch.randn(1, 2, 3) * 100], dim=1)
    torch.testing.assert_close(run_branch(net, "vision", x, lengths), run_branch(net, "vision", padded, lengths))


@pytest.mark.parametrize("attention_dropout", [True, False])
@pytest.mark.parametrize("train", [True, False])
def test_masked_pooling_of_an_empty_sequence_is_finite(attention_dropout, train):
    """A zero-length sequence attends to and pools its first (padded) step instead of giving NaN (0/0 softmax), on
    the CPU's dropout attention path and the fused one alike; the other samples do not notice."""
    config = CMCConfig(layers=2, heads=2, embed_dim=8, attention_dropout=attention_dropout, masked_pooling=True)
    torch.manual_seed(0)
    net = UnimodalNet("audio", 3, config).train(train)
    x = torch.randn(4, 6, 3)
    x[0] = 0.0                                                            # the empty sample's frames are padding
    logits, h = net(x, torch.tensor([0, 6, 3, 1]))
    assert torch.isfinite(logits).all() and torch.isfinite(h).all()
    (logits.sum() + h.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    if not train:
        torch.testing.assert_close(h[0], net(x[:1], torch.tensor([1]))[1][0])


def test_encoder_layers_start_identical_like_nn_transformer_encoder():
    net = UnimodalNet("text", 10, SMALL)
    first, second = (layer.state_dict() for layer in net.encoder_l.layers)
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_stage2_key_mapping():
    assert stage2_key("proj1.weight", 0) == "proj1s.0.weight"
    assert stage2_key("proj2.bias", 1) == "proj2s.1.bias"
    assert stage2_key("out_layer.weight", 2) == "out_layers.2.weight"
    assert stage2_key("encoder_a.layers.0.linear1.weight", 1) == "encoder_a.layers.0.linear1.weight"
    assert stage2_key("norm_v.running_var", 2) == "norm_v.running_var"
    assert stage2_key("text_model.model.embeddings.word_embeddings.weight", 0) == \
        "text_model.model.embeddings.word_embeddings.weight"


def test_transfer_copies_every_stage1_tensor_and_keeps_the_router():
    torch.manual_seed(0)
    dims = (10, 6, 4)
    students = {m: UnimodalNet(m, d, SMALL).state_dict() for m, d in zip(MODALITIES, dims)}
    net = CMCNet(dims, SMALL)
    router = {k: v.clone() for k, v in net.router.state_dict().items()}
    net.load_state_dict(transferred_state(net.state_dict(), students))
    stage2 = net.state_dict()
    for expert, modality in enumerate(MODALITIES):
        for key, value in students[modality].items():
            assert torch.equal(stage2[stage2_key(key, expert)], value), key
    assert all(torch.equal(net.router.state_dict()[k], v) for k, v in router.items())


def test_transfer_fails_loudly_on_a_missing_or_foreign_checkpoint():
    dims = (10, 6, 4)
    net = CMCNet(dims, SMALL)
    students = {m: UnimodalNet(m, d, SMALL).state_dict() for m, d in zip(MODALITIES, dims)}
    with pytest.raises(RuntimeError, match="no selected checkpoint for audio"):
        transferred_state(net.state_dict(), {**students, "audio": None})
    with pytest.raises(RuntimeError, match="no stage-2 counterpart"):
        transferred_state(net.state_dict(), {**students, "vision": {"classifier.weight": torch.zeros(1)}})


# --- presets and settings ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sims_like_info():
    data = synthetic_spec(sizes=(4, 4, 4), name="sims-v2").generate()
    return data_info(data, "features")


def test_presets_follow_the_reference_table(sims_like_info):
    cmc = CMC.default_config(sims_like_info)
    gt = CMCGT.default_config(sims_like_info)
    assert (cmc.layers, cmc.heads, cmc.out_dropout, cmc.finetune_bert_stage1) == (4, 2, 0.3, False)
    assert (gt.layers, gt.heads, gt.out_dropout, gt.finetune_bert_stage1) == (4, 8, 0.1, True)
    changed = build_config(CMC, sims_like_info, parse_overrides(CMC, {"layers": "1", "label_momentum": "0.5,0.6,0.7"}))
    assert changed.layers == 1 and changed.label_momentum == (0.5, 0.6, 0.7) and changed.heads == 2


def test_cmc_gt_refuses_datasets_without_unimodal_labels():
    data = synthetic_spec("mosi", sizes=(4, 4, 4), name="mosi").generate()
    info = data_info(data, "features")
    CMC.check_dataset(info)
    with pytest.raises(UserError, match="ground-truth unimodal"):
        CMCGT.check_dataset(info)


def test_impossible_settings_are_user_errors(sims_like_info):
    with pytest.raises(UserError, match="must divide embed_dim"):
        CMC(build_config(CMC, sims_like_info, {"heads": 3}), sims_like_info)
    with pytest.raises(UserError, match="top_k"):
        CMC(build_config(CMC, sims_like_info, {"top_k": 4}), sims_like_info)
