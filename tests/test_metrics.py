"""Golden tests of every metric in both conventions, on small cases computed by hand in the comments."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import pearsonr

from mer_bench.metrics import METRIC_KEYS, METRICS, compute_metrics, describe, sims_bins

# MOSI-style case. Labels and predictions chosen to hit zero labels, half-way rounding and clipping.
MOSI_LABELS = np.array([-3.0, -1.5, 0.0, 0.0, 0.5, 2.5])
MOSI_PREDS = np.array([-2.4, 0.0, -0.2, 0.3, 0.5, 2.4])


def test_mosi_regression_by_hand():
    m = compute_metrics("mosi", MOSI_LABELS, score=MOSI_PREDS)["regression"]
    # Has0: p>=0 = [F,T,F,T,T,T], y>=0 = [F,F,T,T,T,T]: 4 of 6 agree.
    assert m["has0_acc2"] == pytest.approx(4 / 6)
    # Weighted F1: class True (4 samples) P=R=3/4 -> 0.75; class False (2 samples) P=R=1/2 -> 0.5.
    assert m["has0_f1"] == pytest.approx((4 * 0.75 + 2 * 0.5) / 6)
    # Non0: zero labels dropped -> samples 0,1,4,5: p>0 = [F,F,T,T] = y>0.
    assert m["non0_acc2"] == 1.0 and m["non0_f1"] == 1.0
    # Acc-7: round(clip(p)) = [-2,0,-0,0,0,2]; round(clip(y)) = [-3,-2,0,0,0,2] (half to even: -1.5->-2, 0.5->0, 2.5->2).
    assert m["acc7"] == pytest.approx(4 / 6)
    # Acc-5: clip to [-2,2] first: p -> [-2,0,0,0,0,2], y -> [-2,-2,0,0,0,2].
    assert m["acc5"] == pytest.approx(5 / 6)
    # MAE on unclipped values: (0.6 + 1.5 + 0.2 + 0.3 + 0 + 0.1) / 6.
    assert m["mae"] == pytest.approx(2.7 / 6)
    assert m["corr"] == pytest.approx(pearsonr(MOSI_PREDS, MOSI_LABELS)[0])


def test_mosi_mae_and_corr_are_not_clipped():
    labels, preds = np.array([-3.0, 3.0, 1.0]), np.array([-5.0, 5.0, 1.0])
    m = compute_metrics("mosi", labels, score=preds)["regression"]
    assert m["mae"] == pytest.approx(4 / 3)
    assert m["acc7"] == 1.0  # clipped for the class metrics only


# SIMS-style case hitting the bin edges -0.1, 0.1 and 0.7 and clipping at -1.
SIMS_LABELS = np.array([-1.0, -0.1, 0.0, 0.1, 0.6, 1.0])
SIMS_PREDS = np.array([-1.3, -0.2, 0.05, 0.1, 0.7, 0.69])


def test_sims_regression_by_hand():
    m = compute_metrics("sims", SIMS_LABELS, score=SIMS_PREDS)["regression"]
    # Acc-2 bins [-1,0] / (0,1]: p -> [0,0,1,1,1,1], y -> [0,0,0,1,1,1]: zero counts as negative.
    assert m["has0_acc2"] == pytest.approx(5 / 6)
    # Acc-3 bins [-1,-0.1], (-0.1,0.1], (0.1,1]: p -> [0,0,1,1,2,2] = y.
    assert m["acc3"] == 1.0
    # Acc-5: p -> [0,1,2,2,3,3] (0.7 is in (0.1,0.7]), y -> [0,1,2,2,3,4].
    assert m["acc5"] == pytest.approx(5 / 6)
    # MAE after clipping p to [-1, 1]: (0 + 0.1 + 0.05 + 0 + 0.1 + 0.31) / 6.
    assert m["mae"] == pytest.approx(0.56 / 6)
    assert m["corr"] == pytest.approx(pearsonr(np.clip(SIMS_PREDS, -1, 1), SIMS_LABELS)[0])
    assert "non0_acc2" not in m  # MMSA defines no Non0 for SIMS


@pytest.mark.parametrize("value,classes,expected", [
    (0.0, 2, 0), (1e-6, 2, 1), (-0.1, 3, 0), (0.1, 3, 1), (0.1000001, 3, 2), (-0.7, 5, 0), (0.7, 5, 3), (0.71, 5, 4),
])
def test_sims_bins_are_closed_on_the_right(value, classes, expected):
    assert sims_bins(np.array([value]), classes)[0] == expected


def test_sims_edges_compare_in_float32_like_mmsa():
    # A label stored as float32 0.1 is slightly above the float64 0.1; MMSA still puts it in (-0.1, 0.1].
    assert sims_bins(np.array([0.1], dtype=np.float32), 3)[0] == 1


@pytest.mark.parametrize("style", ["mosi", "sims"])
def test_perfect_regression_predictor(style):
    labels = np.array([-1.0, -0.6, 0.0, 0.2, 0.8, 1.0]) * (3 if style == "mosi" else 1)
    m = compute_metrics(style, labels, score=labels.copy())["regression"]
    for key, value in m.items():
        expected = 0.0 if key == "mae" else 1.0
        assert value == pytest.approx(expected), key


# Classification: labels [-0.5, 0, 0.4, 0.8, -1] are classes [neg, neu, pos, pos, neg].
CLASS_LABELS = np.array([-0.5, 0.0, 0.4, 0.8, -1.0])
PERFECT_PROBS = np.eye(3)[[0, 1, 2, 2, 0]]


def test_perfect_classifier_scores_one_on_non0():
    """The MMSA/CMC code compares {0,2} labels with {0,1} predictions: this predictor would get Non0 0.5 there."""
    for style in ("mosi", "sims"):
        m = compute_metrics(style, CLASS_LABELS, probs=PERFECT_PROBS)["classification"]
        assert m["acc3"] == 1.0 and m["f1_3"] == 1.0
        assert m["non0_acc2"] == 1.0 and m["non0_f1"] == 1.0


def test_classifier_has0_conventions_differ_on_neutral():
    # A true neutral predicted neutral: p(pos) > p(neg) is false, so it is called negative. Right under SIMS (neutral
    # is non-positive), wrong under MOSI (neutral is non-negative): 4 of 5.
    assert compute_metrics("sims", CLASS_LABELS, probs=PERFECT_PROBS)["classification"]["has0_acc2"] == 1.0
    assert compute_metrics("mosi", CLASS_LABELS, probs=PERFECT_PROBS)["classification"]["has0_acc2"] == 0.8


def test_classifier_binary_ignores_the_neutral_probability():
    probs = np.array([[0.2, 0.5, 0.3], [0.35, 0.6, 0.05]])  # argmax neutral; pos > neg for the first only
    m = compute_metrics("sims", np.array([0.6, -0.4]), probs=probs)["classification"]
    assert m["has0_acc2"] == 1.0
    assert m["acc3"] == 0.0


def test_constant_prediction_has_undefined_correlation():
    m = compute_metrics("sims", SIMS_LABELS, score=np.zeros(6))["regression"]
    assert m["corr"] is None


def test_every_metric_is_described_with_direction():
    for (track, style), keys in METRIC_KEYS.items():
        for key in keys:
            assert ";" in describe(key, track, style), f"{track}/{style}/{key} has no convention"
            assert isinstance(METRICS[key].higher_is_better, bool)
    assert not METRICS["mae"].higher_is_better
    assert "SIMS-style" in describe("has0_acc2", "regression", "sims")
    assert "MOSI-style" in describe("has0_acc2", "regression", "mosi")
    assert "computed correctly" in describe("non0_acc2", "classification", "sims")


@pytest.mark.parametrize("style", ["mosi", "sims"])
def test_an_empty_subset_scores_null_everywhere_without_numpy_warnings(style):
    """A member with no planted text conflict has an empty text-conflict subset: every metric is None (not NaN),
    with the same keys as a real table, and numpy says nothing."""
    rng = np.random.default_rng(0)
    labels = rng.uniform(-1, 1, 50)
    probs = rng.dirichlet(np.ones(3), 50)
    full = compute_metrics(style, labels, labels * 0.5, probs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        empty = compute_metrics(style, np.zeros(0), np.zeros(0), np.zeros((0, 3)))
    assert {track: set(table) for track, table in empty.items()} == {track: set(t) for track, t in full.items()}
    assert all(value is None for table in empty.values() for value in table.values())
    assert set(compute_metrics(style, np.zeros(0), np.zeros(0))) == {"regression"}
