"""Paired comparison of two groups on one metric, from the per-sample test predictions kept in result files.

Every board metric is a function of sums over samples: accuracy of correct-indicator sums, weighted F1 of per-class
counts, MAE of absolute errors, Pearson correlation of sum(p), sum(p^2) and sum(p*y). Swapping two models'
predictions on a set of samples changes those sums linearly, so a permutation test over thousands of random swaps is
one matrix product per block instead of thousands of metric calls. The per-sample forms below reproduce
`mer_bench.metrics` exactly (a test checks it against `compute_metrics`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mer_bench.metrics import sims_bins
from mer_bench.results import RunResult
from mer_bench.stats import SwappedDifference, TestOutcome, paired_permutation_test, paired_t_test

from mer_bench.leaderboard.boards import TRACK_OUTPUTS, Group
from mer_bench.leaderboard.columns import Column, column_value
from mer_bench.leaderboard.shared import sims_truth3


@dataclass(frozen=True)
class SampleForm:
    """One model's predictions on one metric in per-sample form."""

    kind: str               # "accuracy", "f1", "mae" or "corr"
    mask: np.ndarray        # (N,) bool: samples the metric counts (Non0 drops zero / neutral labels)
    true: np.ndarray        # (N,) int class or float label
    pred: np.ndarray        # (N,) int class or float prediction


def metric_kind(key: str) -> str:
    if key in ("mae", "corr"):
        return key
    return "f1" if "f1" in key else "accuracy"


def sample_form(track: str, style: str, key: str, output: np.ndarray, label: np.ndarray,
                shared: bool = False) -> SampleForm:
    """Per-sample classes or values of metric `key`, following the conventions of `mer_bench.metrics`; `shared`:
    as the main table defines it for both tracks (see `leaderboard.shared`), so two tracks' forms share one truth."""
    if shared and track == "classification" and key == "acc3":
        probs = np.asarray(output, np.float64)
        return SampleForm("accuracy", np.ones(len(label), dtype=bool), sims_truth3(label), probs.argmax(axis=1))
    if track == "classification":
        true, pred, mask = _classification_classes(style, key, np.asarray(output, np.float64), label)
    elif style == "mosi":
        true, pred, mask = _mosi_classes(key, np.asarray(output, np.float64), label)
    else:
        true, pred, mask = _sims_classes(key, np.asarray(output, np.float64), label)
    return SampleForm(metric_kind(key), mask, true, pred)


def _mosi_classes(key: str, pred: np.ndarray, label: np.ndarray):
    pred32, label32 = pred.astype(np.float32), label.astype(np.float32)
    everything = np.ones(label.shape, dtype=bool)
    if key in ("mae", "corr"):
        return label, pred, everything                      # unclipped, in float64
    if key.startswith("has0"):
        return (label32 >= 0).astype(int), (pred32 >= 0).astype(int), everything
    if key.startswith("non0"):
        return (label32 > 0).astype(int), (pred32 > 0).astype(int), label32 != 0
    bound = {"acc5": 2.0, "acc7": 3.0}[key]
    rounded = lambda values: np.round(np.clip(values, -bound, bound)).astype(int) + int(bound)  # noqa: E731
    return rounded(label32), rounded(pred32), everything


def _sims_classes(key: str, pred: np.ndarray, label: np.ndarray):
    pred, label = np.clip(pred, -1.0, 1.0), np.clip(label, -1.0, 1.0)
    everything = np.ones(label.shape, dtype=bool)
    if key in ("mae", "corr"):
        return label, pred, everything
    classes = 2 if key.startswith("has0") else int(key[-1])
    return sims_bins(label, classes), sims_bins(pred, classes), everything


def _classification_classes(style: str, key: str, probs: np.ndarray, label: np.ndarray):
    true3 = (np.sign(label.astype(np.float32)) + 1).astype(int)
    everything = np.ones(label.shape, dtype=bool)
    if key in ("acc3", "f1_3"):
        return true3, probs.argmax(axis=1), everything
    positive = (probs[:, 2] > probs[:, 0]).astype(int)       # the neutral probability is ignored, as in metrics.py
    if key.startswith("has0"):
        return ((true3 == 2) if style == "sims" else (true3 >= 1)).astype(int), positive, everything
    return (true3 == 2).astype(int), positive, true3 != 1


def _features(form: SampleForm, classes: int) -> np.ndarray:
    """(N, k) per-sample features whose column sums determine the metric."""
    if form.kind == "accuracy":
        return (form.pred == form.true).astype(np.float64)[:, None]
    if form.kind == "mae":
        return np.abs(form.pred - form.true)[:, None]
    if form.kind == "corr":
        return np.stack([form.pred, form.pred ** 2, form.pred * form.true], axis=1)
    predicted = np.eye(classes)[form.pred]                             # (N, C) one-hot prediction
    return np.concatenate([predicted, predicted * (form.pred == form.true)[:, None]], axis=1)


def _metric_of_sums(form: SampleForm, classes: int) -> Callable[[np.ndarray], np.ndarray]:
    """Metric as a function of (R, k) column sums of `_features`, for R swap patterns at once."""
    n = len(form.true)
    if form.kind in ("accuracy", "mae"):
        return lambda sums: sums[:, 0] / n
    if form.kind == "corr":
        sum_y, sum_yy = form.true.sum(), (form.true ** 2).sum()

        def pearson(sums: np.ndarray) -> np.ndarray:
            sum_p, sum_pp, sum_py = sums[:, 0], sums[:, 1], sums[:, 2]
            spread = (n * sum_pp - sum_p ** 2) * (n * sum_yy - sum_y ** 2)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(spread > 0, (n * sum_py - sum_p * sum_y) / np.sqrt(np.abs(spread)), np.nan)
        return pearson
    support = np.bincount(form.true, minlength=classes).astype(np.float64)   # (C,) true counts

    def weighted_f1(sums: np.ndarray) -> np.ndarray:
        predicted, hits = sums[:, :classes], sums[:, classes:]
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(support + predicted > 0, 2 * hits / (support + predicted), 0.0)   # zero_division=0
        return f1 @ support / n
    return weighted_f1


def swapped_difference(first: SampleForm, second: SampleForm) -> SwappedDifference:
    """Metric(first') - metric(second') after exchanging the two models' predictions where the swap mask is True."""
    keep = first.mask
    first = SampleForm(first.kind, keep[keep], first.true[keep], first.pred[keep])
    second = SampleForm(second.kind, keep[keep], second.true[keep], second.pred[keep])
    classes = int(max(first.true.max(initial=0), first.pred.max(initial=0), second.pred.max(initial=0))) + 1 \
        if first.kind == "f1" else 0
    features_first, features_second = _features(first, classes), _features(second, classes)
    metric = _metric_of_sums(first, classes)
    base_first, base_second = features_first.sum(axis=0), features_second.sum(axis=0)
    change = features_second - features_first        # what first gains (second loses) on a swapped sample

    def difference(swap: np.ndarray) -> np.ndarray:
        moved = swap[:, keep].astype(np.float64) @ change
        return metric(base_first + moved) - metric(base_second - moved)
    return difference


def _aligned(first: RunResult, second: RunResult, tracks: tuple[str, str]
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(label, first's output, second's output) when both kept predictions of the same samples in the same order;
    each side's output is its own track's (a score or probabilities)."""
    output_first, output_second = TRACK_OUTPUTS[tracks[0]], TRACK_OUTPUTS[tracks[1]]
    a, b = first.predictions, second.predictions
    if output_first not in a or output_second not in b or a["ids"] != b["ids"] or a["label"] != b["label"]:
        return None
    return (np.asarray(a["label"], np.float64), np.asarray(a[output_first], np.float64),
            np.asarray(b[output_second], np.float64))


def _seed_difference(first: RunResult, second: RunResult, tracks: tuple[str, str], style: str,
                     column: Column) -> tuple[int, SwappedDifference] | None:
    aligned = _aligned(first, second, tracks)
    if aligned is None:
        return None
    label, output_first, output_second = aligned
    if column.subset != "all":
        index = (first.predictions.get("subsets") or {}).get(column.subset)
        if index is None:
            return None
        label, output_first, output_second = label[index], output_first[index], output_second[index]
    shared = column.kind == "shared"
    form_first = sample_form(tracks[0], style, column.metric, output_first, label, shared)
    form_second = sample_form(tracks[1], style, column.metric, output_second, label, shared)
    return len(label), swapped_difference(form_first, form_second)


def compare(first: Group, second: Group, track: str, style: str, column: Column,
            second_track: str | None = None) -> TestOutcome | None:
    """Test first (on `track`) vs second (on `second_track`, by default the same) on matched seeds: a permutation
    test on per-sample predictions when every matched seed of both kept them, otherwise a paired t-test over the
    seeds' metric values; None when neither is possible. Two tracks are compared only on the main table's shared
    metrics, whose per-sample forms have the same truth on both (see `leaderboard.shared`)."""
    tracks = (track, second_track or track)
    second_by_seed = {run.spec.seed: run for run in second.runs_with(tracks[1])}
    pairs = [(run, second_by_seed[run.spec.seed]) for run in first.runs_with(track) if run.spec.seed in second_by_seed]
    if not pairs:
        return None
    seeds = [_seed_difference(a, b, tracks, style, column) for a, b in pairs]
    if all(seed is not None for seed in seeds):
        outcome = paired_permutation_test(seeds)
        if outcome is not None:
            return outcome
    return paired_t_test([column_value(a, tracks[0], column) for a, _ in pairs],
                         [column_value(b, tracks[1], column) for _, b in pairs])
