"""CMC's formulas against values computed by hand: PLGM, schedules, EMA, SupCon, PFM, the top-k router."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mer_bench_cmc.fusion import combine_experts, expert_loss, parameter_free_fusion, sparse_gates
from mer_bench_cmc.plgm import (PseudoLabelStore, calibration_alpha, ema_update, momentum_schedule,
                                reverse_labels, temporary_labels)
from mer_bench_cmc.supcon import binary_rule, chunked_modality_supcon, modality_supcon, supcon_loss


def close(actual, expected, tol=1e-4):
    torch.testing.assert_close(torch.as_tensor(actual, dtype=torch.float32),
                               torch.as_tensor(expected, dtype=torch.float32), atol=tol, rtol=0)


# --- schedules -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("initial,epoch,gamma,expected", [
    (0.8, 1, 0.5, 0.8),                   # epoch 1 is the initial value
    (0.8, 4, 0.5, 0.9),                   # 1 - 0.2 / 2
    (0.99, 2, 0.5, 1 - 0.01 / math.sqrt(2)),
    (0.9, 2, 5.0, 0.996875),              # 1 - 0.1 / 32: the audio teacher almost stops after one epoch
    (0.6, 10, 2.0, 0.996),                # 1 - 0.4 / 100
])
def test_momentum_schedule(initial, epoch, gamma, expected):
    assert momentum_schedule(initial, epoch, gamma) == pytest.approx(expected, abs=1e-12)


# --- PLGM ------------------------------------------------------------------------------------------------------
def test_alpha_and_temporary_label_by_hand():
    # p = (0.2, 0.7, 0.1), current label class 0, nearest vertex class 1:
    # g_b = |(-0.8, 0.7, 0.1)| = sqrt(1.14), g_r = |(0.2, -0.3, 0.1)| = sqrt(0.14)
    probs = torch.tensor([0.2, 0.7, 0.1])
    base, reverse = torch.tensor([1.0, 0, 0]), reverse_labels(probs)
    close(reverse, [0, 1, 0])
    alpha = (math.sqrt(1.14) - math.sqrt(0.14)) / (math.sqrt(1.14) + math.sqrt(0.14))   # 0.48100
    close(calibration_alpha(probs, base, reverse, eps=0.0), alpha, 1e-6)
    temp = temporary_labels(probs.log(), torch.tensor(0), eps=0.0)
    close(temp, [1 - alpha, alpha, 0.0], 1e-5)


def test_alpha_is_zero_when_the_prediction_agrees_and_never_nan_when_saturated():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 200.0, -200.0]])   # second row: softmax is exactly (0, 1, 0)
    temp = temporary_labels(logits, torch.tensor([0, 1]), eps=1e-8)
    close(temp, [[1.0, 0, 0], [0, 1.0, 0]])
    unprotected = temporary_labels(logits[1:], torch.tensor([1]), eps=0.0)
    assert torch.isnan(unprotected).all()       # the reference's formula without eps: 0 / 0


def test_pseudo_label_store_updates_only_the_batch_with_per_modality_momentum():
    store = PseudoLabelStore(torch.tensor([0, 2, 1]))          # every modality starts at the multimodal one-hot
    close(store.soft[1], [[0, 0, 1.0]] * 3)
    index = torch.tensor([1])
    current = store.read(index)
    temp = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]])  # T pulled to class 0, A to 1, V stays
    store.update(index, current, temp, torch.tensor([0.8, 0.5, 0.9]))
    close(store.soft[1], [[0.2, 0, 0.8], [0, 0.5, 0.5], [0, 0, 1.0]])
    close(store.soft[0], [[1.0, 0, 0]] * 3)                    # other samples untouched
    assert store.hard()[1].tolist() == [2, 1, 2]               # ties go to the first class: A (0, .5, .5) -> 1


def test_text_label_needs_epochs_of_disagreement_to_flip():
    # cmc-reference DERIVED: with alpha = 1 every step, the text label first flips at epoch 5.
    store = PseudoLabelStore(torch.tensor([0]))
    flips = []
    for epoch in range(1, 8):
        m = torch.tensor([momentum_schedule(0.8, epoch, 0.5), momentum_schedule(0.99, epoch, 0.5), 1.0])
        store.update(torch.tensor([0]), store.read(torch.tensor([0])), torch.tensor([[[0, 1.0, 0]] * 3]), m)
        flips.append(int(store.hard()[0, 0]))
    assert flips == [0, 0, 0, 0, 1, 1, 1]
    assert int(store.hard()[0, 1]) == 0                        # audio has not moved off the multimodal label


# --- EMA -------------------------------------------------------------------------------------------------------
def _bn_net(weight: float, mean: float) -> nn.Module:
    net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    with torch.no_grad():
        net[0].weight.fill_(weight)
        net[1].running_mean.fill_(mean)
    return net


@pytest.mark.parametrize("buffers,expected_mean", [("reference", 0.0), ("copy", 4.0), ("ema", 1.0)])
def test_ema_update(buffers, expected_mean):
    teacher, student = _bn_net(1.0, 0.0), _bn_net(3.0, 4.0)
    ema_update(teacher, student, momentum=0.75, buffers=buffers)
    close(teacher[0].weight, [[1.5]])                          # 0.75 * 1 + 0.25 * 3
    close(teacher[1].running_mean, [expected_mean])            # ema: 0.75 * 0 + 0.25 * 4


# --- SupCon ----------------------------------------------------------------------------------------------------
def test_supcon_by_hand():
    # f1 = (1, 0), f2 = (0, 1), f3 = (-1, 0); labels 0, 0, 1; t = 1. Anchor 1: -log(e^0 / (e^0 + e^-1));
    # anchor 2: -log(e^0 / (e^0 + e^0)); anchor 3 has no positive and is left out of the mean.
    features = torch.tensor([[1.0, 0], [0, 1.0], [-1.0, 0]])
    expected = (math.log(1 + math.exp(-1)) + math.log(2)) / 2
    close(supcon_loss(features, torch.tensor([0, 0, 1]), temperature=1.0), expected, 1e-6)
    close(supcon_loss(features, torch.tensor([0, 0, 1]), temperature=0.5),
          (math.log(1 + math.exp(-2)) + math.log(2)) / 2, 1e-6)


def test_supcon_without_positives_is_zero():
    features = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    assert supcon_loss(features, torch.tensor([0, 1, 2]), 0.07).item() == 0.0


def test_modality_supcon_sees_the_reference_concatenation():
    h = torch.nn.functional.normalize(torch.randn(4, 3, 5), dim=-1)          # (B, T/A/V, d)
    targets = torch.tensor([[2, 2, 0], [1, 2, 2], [0, 0, 0], [2, 1, 2]])
    rule = binary_rule("sims")
    concatenated = torch.cat([h[:, 0], h[:, 1], h[:, 2]])                     # [h_t; h_a; h_v]
    labels = rule(torch.cat([targets[:, 0], targets[:, 1], targets[:, 2]]))
    close(modality_supcon(h, targets, rule, 0.07), supcon_loss(concatenated, labels, 0.07), 1e-5)
    halves = [modality_supcon(h[part], targets[part], rule, 0.07) for part in (slice(0, 2), slice(2, 4))]
    close(chunked_modality_supcon(h, targets, rule, 0.07, chunk=2), (2 * halves[0] + 2 * halves[1]) / 4, 1e-5)


def test_binary_rules_follow_the_has0_conventions():
    classes = torch.tensor([0, 1, 2])
    assert binary_rule("sims")(classes).tolist() == [False, False, True]     # positive vs the rest
    assert binary_rule("mosi")(classes).tolist() == [False, True, True]      # non-negative vs negative


# --- PFM and the router ----------------------------------------------------------------------------------------
def test_parameter_free_fusion_by_hand():
    # Orthonormal modalities: similarities are the identity, so with t = 1 each keeps e / (e + 2) of itself.
    h = torch.eye(3).unsqueeze(0)
    own, other = math.e / (math.e + 2), 1 / (math.e + 2)
    close(parameter_free_fusion(h, temperature=1.0)[0], [[own, other, other], [other, own, other],
                                                        [other, other, own]], 1e-6)
    same = torch.nn.functional.normalize(torch.ones(1, 3, 4), dim=-1)       # identical modalities: unchanged
    close(parameter_free_fusion(same, temperature=0.07), same, 1e-6)


E1, E2, E3 = math.exp(1), math.exp(2), math.exp(3)


@pytest.mark.parametrize("top_k,gates", [
    (3, [E1 / (E1 + E2 + E3), E3 / (E1 + E2 + E3), E2 / (E1 + E2 + E3)]),
    (2, [0.0, E3 / (E3 + E2), E2 / (E3 + E2)]),
    (1, [0.0, 1.0, 0.0]),
])
def test_top_k_gates(top_k, gates):
    computed, selected = sparse_gates(torch.tensor([[1.0, 3.0, 2.0]]), top_k)
    close(computed[0], gates, 1e-6)
    assert selected[0].tolist() == [g > 0 for g in gates]


def test_experts_combine_and_unselected_experts_in_the_loss():
    expert_logits = torch.tensor([[[1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0]]])    # (B=1, 3 experts, 3)
    gates, selected = sparse_gates(torch.tensor([[1.0, 3.0, 2.0]]), top_k=2)    # experts A and V
    fused, per_expert = combine_experts(expert_logits, gates, selected)
    close(per_expert[0, 0], [0, 0, 0])                                          # unselected output is zero
    close(fused[0], gates[0, 1] * expert_logits[0, 1] + gates[0, 2] * expert_logits[0, 2])
    targets = torch.tensor([[0, 1, 2]])
    ce_a = -torch.log_softmax(torch.tensor([0, 2.0, 0]), 0)[1]
    ce_v = -torch.log_softmax(torch.tensor([0, 0, 3.0]), 0)[2]
    close(expert_loss(per_expert, targets, selected, mask_unselected=False), math.log(3) + ce_a + ce_v, 1e-5)
    close(expert_loss(per_expert, targets, selected, mask_unselected=True), ce_a + ce_v, 1e-5)
