"""The metrics both tracks define the same way, so regression and classification models can be ranked in one table.

Both tracks score the same test labels; they differ in how a prediction becomes a class. A regression model's class
comes from its continuous score by the dataset's bins, a classifier's from its three probabilities:

- Has0 Acc-2 / F1: the label side is the same on both tracks (MOSI-style: label >= 0 is positive; SIMS-style:
  label > 0 is positive). Regression: the score by the same rule; classification: p(positive) > p(negative).
- Acc-3, SIMS-style only: the label's class by the SIMS bins [-1, -0.1], (-0.1, 0.1], (0.1, 1]. Regression: the
  score by the same bins (as stored); classification: the argmax of the probabilities. The classification track's
  own Acc-3 takes the label's class by its sign instead, which is the same class on SIMS's labels (multiples of 0.2)
  but not on every label set, so a classifier's shared Acc-3 is recomputed here from its stored probabilities.
  MOSI-style regression defines no 3-class bins, so MOSI-style boards compare on Has0 Acc-2 / F1 only.

Track-specific metrics (MAE, Corr, Acc-5/7, F1-3, Non0) stay in the track tables.
"""

from __future__ import annotations

import numpy as np

from mer_bench.metrics import METRIC_KEYS, sims_bins
from mer_bench.results import RunResult

SHARED_ORDER = ("has0_acc2", "has0_f1", "acc3")
COMPARISON = "comparison"     # the id of the main table (its `track` in tables, downloads and page anchors)

CLASS_SENTENCES = {
    "mosi": "Classes, MOSI-style: a label >= 0 is positive; a regression model's prediction is positive when its "
            "score is >= 0, a classifier's when p(positive) > p(negative).",
    "sims": "Classes, SIMS-style: a label > 0 is positive, and its 3 classes are the bins [-1, -0.1], (-0.1, 0.1], "
            "(0.1, 1]; a regression model's classes come from its score by the same bins, a classifier's from its "
            "probabilities (positive when p(positive) > p(negative); Acc-3 by the argmax).",
}


def shared_keys(style: str) -> list[str]:
    """Metrics both tracks report for this label style, in display order."""
    both = set(METRIC_KEYS[("regression", style)]) & set(METRIC_KEYS[("classification", style)])
    return [key for key in SHARED_ORDER if key in both]


def shared_value(run: RunResult, track: str, key: str, subset: str = "all") -> float | None:
    """The value of a shared metric for one run on one track; None when undefined or not recorded."""
    if track == "classification" and key == "acc3":
        return _classifier_acc3(run, subset)
    value = run.metrics["test"].get(subset, {}).get(track, {}).get(key)
    return None if value is None else float(value)


def sims_truth3(label: np.ndarray) -> np.ndarray:
    """(N,) class of each label by the SIMS 3-class bins, as the regression track bins it."""
    return sims_bins(np.clip(np.asarray(label, np.float64), -1.0, 1.0), 3)


def _classifier_acc3(run: RunResult, subset: str) -> float | None:
    predictions = run.predictions
    if "probs" not in predictions:
        return None          # no stored probabilities: nothing to recompute from (such a row is never ranked)
    pick = slice(None) if subset == "all" else (predictions.get("subsets") or {}).get(subset)
    if pick is None:
        return None
    label = np.asarray(predictions["label"], np.float64)[pick]
    probs = np.asarray(predictions["probs"], np.float64)[pick]
    return float(np.mean(probs.argmax(axis=1) == sims_truth3(label))) if len(label) else None
