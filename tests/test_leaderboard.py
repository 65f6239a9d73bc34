"""Leaderboard aggregation, ties and the per-sample metric forms, on result files with known contents."""

from __future__ import annotations

import numpy as np
import pytest

from mer_bench.leaderboard.boards import deduplicate, make_boards, safe_slug
from mer_bench.leaderboard.paired import sample_form, swapped_difference
from mer_bench.leaderboard.ranking import build_tables
from mer_bench.leaderboard.reported import load_reported, parse_reported, reported_for
from mer_bench.metrics import METRIC_KEYS, compute_metrics
from mer_bench.results import RunResult

from tests.test_leaderboard_fixtures import noisy_predictions, result_dict, synthetic_labels


def run(*args, **kwargs) -> RunResult:
    return RunResult.from_json_dict(result_dict(*args, **kwargs))


def tables_by_track(results, reported=None):
    (board,) = make_boards(results)
    return board, {table.track: table for table in build_tables(board, reported or {})}


def row_of(table, model):
    return next(row for row in table.rows if row.group.key.model == model)


# ---- per-sample metric forms --------------------------------------------------------------------------------------

def _labels(style: str, n: int, rng) -> np.ndarray:
    """Labels on the dataset's grid, with exact zeros and bin edges so every convention's edge case occurs."""
    if style == "sims":
        return rng.choice([-1.0, -0.8, -0.7, -0.2, -0.1, 0.0, 0.1, 0.2, 0.6, 0.7, 1.0], n)
    return rng.choice(np.arange(-3.0, 3.01, 1 / 3).round(4).tolist() + [0.0, 0.5, 2.5, -1.5], n)


@pytest.mark.parametrize("track,style", sorted(METRIC_KEYS))
def test_sample_forms_reproduce_compute_metrics(track, style):
    """The permutation test must compare exactly the numbers the board shows."""
    rng = np.random.default_rng(7)
    label = _labels(style, 150, rng)
    scale = 1.0 if style == "sims" else 3.0
    if track == "regression":
        first = label + rng.normal(0, 0.3 * scale, 150)
        second = np.round(label + rng.normal(0, 0.5 * scale, 150), 1)          # values on bin edges too
        first_metrics = compute_metrics(style, label, score=first)[track]
        second_metrics = compute_metrics(style, label, score=second)[track]
    else:
        first, second = rng.dirichlet([1, 1, 1], 150), rng.dirichlet([2, 1, 2], 150)
        first_metrics = compute_metrics(style, label, probs=first)[track]
        second_metrics = compute_metrics(style, label, probs=second)[track]
    for key in METRIC_KEYS[(track, style)]:
        difference = swapped_difference(sample_form(track, style, key, first, label),
                                        sample_form(track, style, key, second, label))
        observed = difference(np.zeros((1, 150), dtype=bool))[0]
        assert observed == pytest.approx(first_metrics[key] - second_metrics[key], abs=1e-9), key
        swapped_all = difference(np.ones((1, 150), dtype=bool))[0]                # exchanging every prediction
        assert swapped_all == pytest.approx(-observed, abs=1e-9), key


# ---- grouping ------------------------------------------------------------------------------------------------------

def test_cell_mean_std_and_interval_over_seeds():
    """Acc-2 of 0.6, 0.7 and 0.8 on three seeds: mean 0.7, sample std 0.1, 95% CI 0.7 +- 0.2484138."""
    label = np.full(10, 0.5)
    runs = [run("m", seed, label, np.where(np.arange(10) < correct, 0.5, -0.5))
            for seed, correct in ((1, 6), (2, 7), (3, 8))]
    _, tables = tables_by_track(runs)
    cell = tables["regression"].rows[0].cells["has0_acc2"]
    assert (cell.summary.mean, cell.summary.std, cell.summary.n) == pytest.approx((0.7, 0.1, 3))
    assert (cell.summary.ci_low, cell.summary.ci_high) == pytest.approx((0.7 - 0.2484138, 0.7 + 0.2484138))
    assert cell.mark == "best"
    assert list(tables) == ["comparison", "regression"]         # no probabilities: no classification table


def test_different_checksums_are_never_averaged():
    label, _ = synthetic_labels(40)
    good, bad = noisy_predictions(label, 0.05, 1)[0], noisy_predictions(label, 0.9, 1)[0]
    boards = make_boards([run("m", 1, label, good, sha256="a" * 64), run("m", 1, label, bad, sha256="b" * 64),
                          run("m", 2, label, good, sha256="a" * 64)])
    assert [board.slug for board in boards] == ["synthetic-aaaaaaaa", "synthetic-bbbbbbbb"]
    assert [len(board.runs) for board in boards] == [2, 1]
    assert boards[0].siblings == ["synthetic-bbbbbbbb"] and boards[1].siblings == ["synthetic-aaaaaaaa"]
    maes = [build_tables(board, {})[1].rows[0].cells["mae"].summary.mean for board in boards]
    assert maes[0] < 0.1 < maes[1]


def test_groups_split_by_settings_and_skip_duplicates():
    label, _ = synthetic_labels(40)
    score = noisy_predictions(label, 0.2, 1)[0]
    results = [run("m", 1, label, score), run("m", 2, label, score), run("m", 1, label, score, overrides={"lr": 0.01}),
               run("m", 1, label, score, created="2024-06-01T00:00:00+00:00")]      # same run id, newer
    unique, duplicates = deduplicate(results)
    assert duplicates == 1 and len(unique) == 3
    (board,) = make_boards(unique)
    assert [(group.key.settings_text(), group.seeds) for group in board.groups] == [("defaults", [1, 2]),
                                                                                    ("lr=0.01", [1])]
    assert board.groups[0].slug == "m" and board.groups[1].slug.startswith("m-")
    assert "2024-06-01" in board.last_update


def test_unsafe_names_get_safe_distinct_slugs():
    assert safe_slug("cmc") == "cmc"
    assert safe_slug("<script>").startswith("script-") and safe_slug("<script>") != safe_slug("script")
    assert safe_slug("a/b") != safe_slug("a_b") and "/" not in safe_slug("a/b")


# ---- best and ties -------------------------------------------------------------------------------------------------

def test_ties_use_the_paired_permutation_test_on_predictions():
    label, unimodal = synthetic_labels(200)
    seeds = (1, 2, 3)
    best = {seed: noisy_predictions(label, 0.2, seed)[0] for seed in seeds}
    near = {seed: best[seed].copy() for seed in seeds}
    for seed in seeds:                                # flip the sign of one prediction: a 0.005 difference
        near[seed][seed] = -near[seed][seed]
    runs = []
    for seed in seeds:
        runs.append(run("best", seed, label, best[seed], unimodal=unimodal))
        runs.append(run("near", seed, label, near[seed], unimodal=unimodal))
        runs.append(run("poor", seed, label, noisy_predictions(label, 1.5, seed)[0], unimodal=unimodal))
    _, tables = tables_by_track(runs)
    table = tables["regression"]
    assert [row.group.key.model for row in table.rows] == ["best", "near", "poor"]
    assert row_of(table, "best").cells["has0_acc2"].mark == "best"
    near_cell, poor_cell = row_of(table, "near").cells["has0_acc2"], row_of(table, "poor").cells["has0_acc2"]
    assert near_cell.test.method == "permutation" and near_cell.test.seeds == 3
    assert near_cell.mark == "tied" and near_cell.test.p_value >= 0.05
    assert poor_cell.mark == "" and poor_cell.test.p_value < 0.05
    assert row_of(table, "poor").cells["mae"].mark == ""
    assert row_of(table, "best").cells["gap"].mark == ""                         # the gap is never ranked


def test_rows_without_predictions_are_shown_but_never_ranked():
    """Metrics of a run without per-sample predictions cannot be checked, so they take no mark, even when best."""
    label, _ = synthetic_labels(60)
    runs = []
    for seed in (1, 2, 3):
        runs.append(run("kept", seed, label, noisy_predictions(label, 0.4, seed)[0]))
        runs.append(run("claims", seed, label, noisy_predictions(label, 0.05, seed)[0], keep_predictions=False))
    _, tables = tables_by_track(runs)
    table = tables["regression"]
    claims, kept = row_of(table, "claims"), row_of(table, "kept")
    assert table.rows[0] is claims                                       # still shown, in order of its mean
    assert not claims.verified and kept.verified
    for column in table.columns:
        if column.ranked:
            assert claims.cells[column.id].mark == "" and claims.cells[column.id].test is None, column.id
    assert kept.cells["mae"].mark == "best"


def test_ties_fall_back_to_a_t_test_when_predictions_are_not_aligned():
    label, _ = synthetic_labels(60)
    runs = []
    for seed in (1, 2, 3):
        runs.append(run("kept", seed, label, noisy_predictions(label, 0.2, seed)[0]))
        other = run("reordered", seed, label, noisy_predictions(label, 0.25, seed)[0])
        other.predictions["ids"] = other.predictions["ids"][::-1]    # same samples, another order: not paired
        runs.append(other)
    _, tables = tables_by_track(runs)
    tested = [row.cells["mae"].test for row in tables["regression"].rows if row.cells["mae"].mark != "best"]
    assert [outcome.method for outcome in tested] == ["t-test"]
    assert tested[0].seeds == 3


def test_unmatched_seeds_are_not_tested():
    label, _ = synthetic_labels(60)
    runs = [run("a", 1, label, noisy_predictions(label, 0.1, 1)[0]), run("b", 2, label, noisy_predictions(label, 0.5, 2)[0])]
    _, tables = tables_by_track(runs)
    cell = row_of(tables["regression"], "b").cells["mae"]
    assert cell.mark == "" and cell.test is None


# ---- reported rows -------------------------------------------------------------------------------------------------

def test_reported_numbers_are_mapped_onto_metric_keys():
    rows = parse_reported(load_reported())
    assert sorted({dataset for dataset, _ in rows}) == ["mosei", "mosi", "sims", "sims-v2"]
    assert [len(rows[(name, "regression")]) for name in ("mosi", "mosei", "sims", "sims-v2")] == [11, 11, 13, 13]
    self_mm = next(row for row in rows[("mosi", "regression")] if row.model == "self_mm")
    assert self_mm.values["non0_acc2"] == pytest.approx(0.8546) and self_mm.values["mae"] == pytest.approx(0.708)
    tfn = next(row for row in rows[("sims", "regression")] if row.model == "tfn")
    assert tfn.values == pytest.approx({"has0_acc2": 0.7838, "acc3": 0.6512, "acc5": 0.393, "has0_f1": 0.7862,
                                        "mae": 0.4322, "corr": 0.591})
    assert "result-stat.md" in tfn.source.url
    assert reported_for("sims", synthetic=True) == {}


def test_reported_rows_are_never_ranked():
    label, unimodal = synthetic_labels(60)
    runs = [run("ours", seed, label, -label - 0.05, unimodal=unimodal, dataset="sims",
                synthetic=False) for seed in (1, 2)]
    board, tables = tables_by_track(runs, reported_for("sims", synthetic=False))
    assert len(tables["regression"].reported) == 13
    # every reported Acc-2 beats this always-wrong model, yet the only best mark is its own
    assert all(row.values["has0_acc2"] > tables["regression"].rows[0].cells["has0_acc2"].summary.mean
               for row in tables["regression"].reported)
    assert tables["regression"].rows[0].cells["has0_acc2"].mark == "best"
    assert board.title == "SIMS"


# ---- probes --------------------------------------------------------------------------------------------------------

def test_probe_columns_follow_the_track_the_probes_measured():
    label, _ = synthetic_labels(40)
    probes = {"track": "classification", "text_reliance_share": 0.9, "follows_text_rate": None}
    runs = [run("probed", seed, label, *noisy_predictions(label, 0.2, seed), probes=probes) for seed in (1, 2)]
    runs += [run("plain", seed, label, *noisy_predictions(label, 0.3, seed)) for seed in (1, 2)]
    _, tables = tables_by_track(runs)
    assert not any(column.kind == "probe" for column in tables["regression"].columns)
    cells = {row.group.key.model: row.cells for row in tables["classification"].rows}
    assert cells["probed"]["probe:text_reliance_share"].summary.mean == pytest.approx(0.9)
    assert cells["probed"]["probe:follows_text_rate"].summary.mean is None          # null is tolerated
    assert cells["plain"]["probe:text_reliance_share"].summary.n == 0               # no probes at all
    assert cells["probed"]["probe:text_reliance_share"].mark == ""                  # probes are not ranked


# ---- the main table across tracks, effective configurations --------------------------------------------------------

def test_default_and_explicit_default_settings_are_one_row():
    """A run with explicit settings equal to the defaults is the same configuration: one row, named "defaults"."""
    label, _ = synthetic_labels(40)
    score = noisy_predictions(label, 0.2, 1)[0]
    results = [run("m", 1, label, score), run("m", 2, label, score),
               run("m", 1, label, score, overrides={"hidden": 32}, created="2024-06-01T00:00:00+00:00")]
    (board,) = make_boards(results)
    (group,) = board.groups
    assert group.key.settings_text() == "defaults" and group.seeds == [1, 2] and group.slug == "m"
    assert [alternate.spec.seed for alternate in group.alternates] == [1]
    assert results[2].run_id in group.run_ids


def test_main_table_ranks_both_tracks_together():
    """A regressor and a classifier in one table, marked by one rule; a classifier's Acc-3 uses the SIMS bins."""
    label, unimodal = synthetic_labels(200)
    runs = []
    for seed in (1, 2, 3):
        score, probs = noisy_predictions(label, 0.2, seed)
        runs.append(run("regressor", seed, label, score, unimodal=unimodal))
        runs.append(run("classifier", seed, label, None, noisy_predictions(label, 1.5, seed)[1], unimodal=unimodal))
    board, tables = tables_by_track(runs)
    main = tables["comparison"]
    assert [(row.group.key.model, row.track) for row in main.rows] == [("regressor", "regression"),
                                                                      ("classifier", "classification")]
    assert [column.id for column in main.columns][:3] == ["has0_acc2", "has0_f1", "acc3"]
    assert {"consistent:has0_acc2", "inconsistent:has0_acc2", "text-conflict:has0_acc2"} <= {c.id for c in main.columns}
    best, other = main.rows
    assert best.cells["has0_acc2"].mark == "best"
    assert other.cells["has0_acc2"].test is not None and other.cells["has0_acc2"].test.method == "permutation"
    # on labels that are multiples of 0.2 the SIMS bins and the polarity give the same classes
    stored = np.mean([r.metrics["test"]["all"]["classification"]["acc3"] for r in runs if r.spec.model == "classifier"])
    assert other.cells["acc3"].summary.mean == pytest.approx(stored)


def test_shared_acc3_of_a_classifier_bins_labels_like_the_regression_track():
    from mer_bench.leaderboard.shared import shared_value
    label = np.array([0.05, -0.05, 0.5, -0.5])          # not multiples of 0.2: polarity and bins disagree
    probs = np.array([[0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.8, 0.1, 0.1]])
    result = run("c", 1, label, None, probs)
    assert result.metrics["test"]["all"]["classification"]["acc3"] == 0.5     # its own track: by polarity
    assert shared_value(result, "classification", "acc3") == 1.0              # the main table: by SIMS bins


def test_published_checksums_match_the_registered_datasets():
    from mer_bench.data.builtin import STANDARD_DATASETS
    from mer_bench.leaderboard.checksums import PUBLISHED_SHA256
    assert PUBLISHED_SHA256 == {spec.name: spec.sha256 for spec in STANDARD_DATASETS if spec.sha256}
