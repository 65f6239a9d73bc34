"""The standard metrics, in the MOSI and SIMS conventions, for the regression and 3-class classification tracks.

Conventions follow MMSA's ``metricsTop.py`` (regression) and the CMC code's classification metrics, except where those
are wrong (see `non0_*` on the classification track). Values are returned unrounded, as Python floats; a metric that is
undefined on the given data (Pearson correlation of a constant prediction) is ``None``.

Comparisons against bin edges are made in float32, as MMSA makes them on its float32 arrays, so a label stored as
0.1 falls in the bin ``(-0.1, 0.1]`` exactly as it does there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import f1_score

from mer_bench.errors import NonFiniteError

TRACKS = ("regression", "classification")


@dataclass(frozen=True)
class MetricInfo:
    key: str
    label: str                # column header
    higher_is_better: bool
    description: str          # one line; the convention is added per style by `describe`


METRICS: dict[str, MetricInfo] = {m.key: m for m in (
    MetricInfo("has0_acc2", "Acc-2 (Has0)", True, "binary accuracy with zero labels kept"),
    MetricInfo("has0_f1", "F1 (Has0)", True, "weighted F1 of the Has0 binary split"),
    MetricInfo("non0_acc2", "Acc-2 (Non0)", True, "negative vs positive accuracy, zero labels dropped"),
    MetricInfo("non0_f1", "F1 (Non0)", True, "weighted F1 of the Non0 binary split"),
    MetricInfo("acc3", "Acc-3", True, "3-class accuracy (negative / neutral / positive)"),
    MetricInfo("f1_3", "F1-3", True, "weighted F1 over the three classes"),
    MetricInfo("acc5", "Acc-5", True, "5-class accuracy"),
    MetricInfo("acc7", "Acc-7", True, "7-class accuracy"),
    MetricInfo("mae", "MAE", False, "mean absolute error"),
    MetricInfo("corr", "Corr", True, "Pearson correlation"),
)}

# Which metrics each (track, style) reports, in display order.
METRIC_KEYS = {
    ("regression", "mosi"): ("has0_acc2", "has0_f1", "non0_acc2", "non0_f1", "acc5", "acc7", "mae", "corr"),
    ("regression", "sims"): ("has0_acc2", "has0_f1", "acc3", "acc5", "mae", "corr"),
    ("classification", "mosi"): ("acc3", "f1_3", "has0_acc2", "has0_f1", "non0_acc2", "non0_f1"),
    ("classification", "sims"): ("acc3", "f1_3", "has0_acc2", "has0_f1", "non0_acc2", "non0_f1"),
}

_CLASSIFIED_AS_CMC = "predicted positive when p(positive) > p(negative), the neutral probability ignored (as CMC)"
_CONVENTIONS = {
    ("regression", "mosi", "has0_acc2"): "MOSI-style: prediction >= 0 vs label >= 0 (zero counts as positive)",
    ("regression", "mosi", "has0_f1"): "MOSI-style: weighted F1 of (label >= 0) vs (prediction >= 0)",
    ("regression", "mosi", "non0_acc2"): "MOSI-style: samples with label 0 dropped; prediction > 0 vs label > 0",
    ("regression", "mosi", "non0_f1"): "MOSI-style: weighted F1 with samples of label 0 dropped",
    ("regression", "mosi", "acc5"): "MOSI-style: round(clip(x, -2, 2)) equal, rounding half to even",
    ("regression", "mosi", "acc7"): "MOSI-style: round(clip(x, -3, 3)) equal, rounding half to even",
    ("regression", "mosi", "mae"): "MOSI-style: on unclipped predictions",
    ("regression", "mosi", "corr"): "MOSI-style: on unclipped predictions",
    ("regression", "sims", "has0_acc2"): "SIMS-style: both clipped to [-1, 1]; bins [-1, 0] and (0, 1] (zero counts "
                                         "as negative)",
    ("regression", "sims", "has0_f1"): "SIMS-style: weighted F1 of the bins [-1, 0] and (0, 1]",
    ("regression", "sims", "acc3"): "SIMS-style: bins [-1, -0.1], (-0.1, 0.1], (0.1, 1]",
    ("regression", "sims", "acc5"): "SIMS-style: bins [-1, -0.7], (-0.7, -0.1], (-0.1, 0.1], (0.1, 0.7], (0.7, 1]",
    ("regression", "sims", "mae"): "SIMS-style: on predictions and labels clipped to [-1, 1]",
    ("regression", "sims", "corr"): "SIMS-style: on predictions and labels clipped to [-1, 1]",
    ("classification", "mosi", "has0_acc2"): f"MOSI-style: negative vs non-negative label; {_CLASSIFIED_AS_CMC}",
    ("classification", "mosi", "has0_f1"): f"MOSI-style: negative vs non-negative label; {_CLASSIFIED_AS_CMC}",
    ("classification", "sims", "has0_acc2"): f"SIMS-style: non-positive vs positive label; {_CLASSIFIED_AS_CMC}",
    ("classification", "sims", "has0_f1"): f"SIMS-style: non-positive vs positive label; {_CLASSIFIED_AS_CMC}",
}
_NON0_CLASSIFICATION = ("neutral labels dropped, negative vs positive, computed correctly: the MMSA and CMC code compare "
                        "{0, 2} labels with {0, 1} predictions there")
for _style in ("mosi", "sims"):
    for _key in ("non0_acc2", "non0_f1"):
        _CONVENTIONS[("classification", _style, _key)] = _NON0_CLASSIFICATION
    for _key in ("acc3", "f1_3"):
        _CONVENTIONS[("classification", _style, _key)] = "argmax of the three probabilities against the label's polarity"


def describe(key: str, track: str, style: str) -> str:
    """One line: what the metric is and which convention it uses on this track and style."""
    convention = _CONVENTIONS.get((track, style, key))
    return METRICS[key].description + (f"; {convention}" if convention else "")


def compute_metrics(style: str, labels: np.ndarray, score: np.ndarray | None = None,
                    probs: np.ndarray | None = None) -> dict[str, dict[str, float | None]]:
    """{track: {metric: value}} for every track the predictions allow. Non-finite input is refused (see below)."""
    labels = _finite_array("labels", labels).reshape(-1)
    if labels.size == 0:   # an empty subset (a member with no planted text conflict): no metric exists
        return _null_tables(style, score is not None, probs is not None)
    metrics: dict[str, dict[str, float | None]] = {}
    if score is not None:
        metrics["regression"] = regression_metrics(style, _finite_array("score", score).reshape(-1), labels)
    if probs is not None:
        metrics["classification"] = classification_metrics(style, _finite_array("probs", probs), labels)
    return metrics


def _null_tables(style: str, with_score: bool, with_probs: bool) -> dict[str, dict[str, None]]:
    """The tables `compute_metrics` gives, every value None (numpy would warn about empty means and store NaN)."""
    tracks = [track for track, wanted in (("regression", with_score), ("classification", with_probs)) if wanted]
    return {track: dict.fromkeys(METRIC_KEYS[(track, style)]) for track in tracks}


def _finite_array(name: str, values: np.ndarray) -> np.ndarray:
    """`values` as float64, or `NonFiniteError` if any is NaN or infinite.

    Callers check model outputs before scoring (`Predictions.check`); this is the second line of defence, because a
    NaN does not fail loudly here: it falls silently into one bin (NaN compares false with every edge) and comes out
    as a plausible accuracy.
    """
    array = np.asarray(values, dtype=np.float64)
    bad = int(array.size - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise NonFiniteError(f"Metrics refused: {bad} of {array.size} {name} values are NaN or infinite; "
                             f"no metric is computed on non-finite values.")
    return array


def regression_metrics(style: str, pred: np.ndarray, label: np.ndarray) -> dict[str, float | None]:
    if style == "mosi":
        return _mosi_regression(pred, label)
    if style == "sims":
        return _sims_regression(pred, label)
    raise ValueError(f"unknown label style {style!r}")


def _mosi_regression(pred: np.ndarray, label: np.ndarray) -> dict[str, float | None]:
    pred32, label32 = pred.astype(np.float32), label.astype(np.float32)
    nonzero = label32 != 0
    return {
        "has0_acc2": _accuracy(pred32 >= 0, label32 >= 0),
        "has0_f1": _weighted_f1(label32 >= 0, pred32 >= 0),
        "non0_acc2": _accuracy(pred32[nonzero] > 0, label32[nonzero] > 0),
        "non0_f1": _weighted_f1(label32[nonzero] > 0, pred32[nonzero] > 0),
        "acc5": _accuracy(_round_clipped(pred32, 2.0), _round_clipped(label32, 2.0)),
        "acc7": _accuracy(_round_clipped(pred32, 3.0), _round_clipped(label32, 3.0)),
        "mae": float(np.mean(np.abs(pred - label))),
        "corr": _pearson(pred, label),
    }


def _round_clipped(values: np.ndarray, bound: float) -> np.ndarray:
    return np.round(np.clip(values, -bound, bound))   # np.round rounds half to even, as MMSA does


SIMS_EDGES = {
    2: (0.0,),
    3: (-0.1, 0.1),
    5: (-0.7, -0.1, 0.1, 0.7),
}


def sims_bins(values: np.ndarray, classes: int) -> np.ndarray:
    """Class index per value for MMSA's SIMS bins, each bin closed on the right: (lo, hi]."""
    edges = np.asarray(SIMS_EDGES[classes], dtype=np.float32)
    return np.searchsorted(edges, values.astype(np.float32), side="left")


def _sims_regression(pred: np.ndarray, label: np.ndarray) -> dict[str, float | None]:
    pred, label = np.clip(pred, -1.0, 1.0), np.clip(label, -1.0, 1.0)
    pred2, label2 = sims_bins(pred, 2), sims_bins(label, 2)
    return {
        "has0_acc2": _accuracy(pred2, label2),
        "has0_f1": _weighted_f1(label2, pred2),
        "acc3": _accuracy(sims_bins(pred, 3), sims_bins(label, 3)),
        "acc5": _accuracy(sims_bins(pred, 5), sims_bins(label, 5)),
        "mae": float(np.mean(np.abs(pred - label))),
        "corr": _pearson(pred, label),
    }


def classification_metrics(style: str, probs: np.ndarray, label: np.ndarray) -> dict[str, float | None]:
    """3-class probabilities (N, 3) against regression labels, classes by polarity: 0 < 0, 1 == 0, 2 > 0."""
    true3 = (np.sign(label.astype(np.float32)) + 1).astype(np.int64)
    pred3 = probs.argmax(axis=1)
    predicted_positive = probs[:, 2] > probs[:, 0]      # argmax over [negative, positive]; ties go to negative
    true_binary = true3 == 2 if style == "sims" else true3 >= 1
    nonneutral = true3 != 1
    return {
        "acc3": _accuracy(pred3, true3),
        "f1_3": _weighted_f1(true3, pred3),
        "has0_acc2": _accuracy(predicted_positive, true_binary),
        "has0_f1": _weighted_f1(true_binary, predicted_positive),
        "non0_acc2": _accuracy(predicted_positive[nonneutral], true3[nonneutral] == 2),
        "non0_f1": _weighted_f1(true3[nonneutral] == 2, predicted_positive[nonneutral]),
    }


def _accuracy(pred: np.ndarray, true: np.ndarray) -> float | None:
    if pred.size == 0:
        return None
    return float(np.mean(pred == true))


def _weighted_f1(true: np.ndarray, pred: np.ndarray) -> float | None:
    if true.size == 0:
        return None
    return float(f1_score(true, pred, average="weighted", zero_division=0))


def _pearson(pred: np.ndarray, label: np.ndarray) -> float | None:
    if pred.size < 2 or np.std(pred) == 0 or np.std(label) == 0:
        return None
    return float(np.corrcoef(pred, label)[0, 1])


MAIN_METRIC = "has0_acc2"  # ranks boards and measures probe drops; defined on both tracks and both styles
