"""Statistics over seeds with known answers: mean and sample std, t intervals, paired t-test, permutation test."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest

from mer_bench.stats import (PERMUTATIONS, mean_std, paired_permutation_test, paired_t_test, summarize,
                             t_interval)


def test_mean_std_uses_the_sample_std_and_skips_undefined_values():
    assert mean_std([0.5, 0.6, 0.7]) == pytest.approx((0.6, 0.1, 3))
    assert mean_std([0.5, None, float("nan"), 0.7]) == pytest.approx((0.6, math.sqrt(0.02), 2))
    assert mean_std([0.4]) == (0.4, None, 1)
    assert mean_std([None]) == (None, None, 0)


def test_t_interval_of_three_seeds():
    # t(0.975, 2 degrees of freedom) = 4.3026527; half width = 4.3026527 * 0.1 / sqrt(3) = 0.2484138
    low, high = t_interval(0.6, 0.1, 3)
    assert low == pytest.approx(0.6 - 0.2484138, abs=1e-7)
    assert high == pytest.approx(0.6 + 0.2484138, abs=1e-7)


def test_summary_has_no_interval_below_two_seeds():
    summary = summarize([0.5, 0.6, 0.7])
    assert (summary.mean, summary.std, summary.n) == pytest.approx((0.6, 0.1, 3))
    assert summary.ci_high - summary.ci_low == pytest.approx(2 * 0.2484138, abs=1e-7)
    single = summarize([0.5])
    assert (single.mean, single.std, single.n, single.ci_low, single.ci_high) == (0.5, None, 1, None, None)
    assert summarize([]).mean is None


def test_paired_t_test_known_outcome():
    # differences 0.02, 0.02, 0.01, 0.03: mean 0.02, sd 0.0081650, t = 4.89898 on 3 df, two-sided p = 0.016277
    outcome = paired_t_test([0.80, 0.82, 0.85, 0.79], [0.78, 0.80, 0.84, 0.76])
    assert outcome.method == "t-test" and outcome.seeds == 4
    assert outcome.difference == pytest.approx(0.02)
    assert outcome.p_value == pytest.approx(0.016277, abs=1e-6)


def test_paired_t_test_edge_cases():
    assert paired_t_test([0.5], [0.4]) is None                                  # one pair: no test
    assert paired_t_test([0.5, None, 0.7], [0.4, 0.3, None]) is None            # only one complete pair
    assert paired_t_test([0.5, 0.6], [0.5, 0.6]).p_value == 1.0                 # identical: no evidence
    assert paired_t_test([0.5, 0.6], [0.4, 0.5]).p_value == 0.0                 # the same gain on every seed


def sign_flip(differences: np.ndarray):
    """Per-sample differences of a decomposable metric (mean over samples): a swap flips a sample's sign."""
    def difference(swap: np.ndarray) -> np.ndarray:
        return np.where(swap, -differences, differences).sum(axis=1) / len(differences)
    return len(differences), difference


def exact_p(differences: np.ndarray) -> float:
    """The two-sided p-value over all 2^N swap patterns."""
    observed = abs(differences.sum())
    totals = [abs(np.dot(signs, differences)) for signs in product((1, -1), repeat=len(differences))]
    return float(np.mean([total >= observed - 1e-12 for total in totals]))


@pytest.mark.parametrize("discordant", [5, 6])
def test_permutation_test_matches_exact_enumeration(discordant):
    """One model right and the other wrong on `discordant` of 10 samples, always in the first one's favour: exact
    p = 2 / 2^discordant, that is 0.0625 (not significant at 0.05) for 5 and 0.03125 (significant) for 6."""
    differences = np.array([1.0] * discordant + [0.0] * (10 - discordant))
    exact = exact_p(differences)
    assert exact == pytest.approx(2 / 2 ** discordant)
    outcome = paired_permutation_test([sign_flip(differences)])
    assert outcome.method == "permutation" and outcome.seeds == 1
    assert outcome.difference == pytest.approx(discordant / 10)
    assert outcome.p_value == pytest.approx(exact, abs=0.015)                  # Monte Carlo error about 0.005


def test_permutation_test_pools_matched_seeds():
    """Three discordant samples on each of two seeds carry the evidence of six on one seed."""
    seed = np.array([1.0, 1.0, 1.0, 0.0, 0.0])
    outcome = paired_permutation_test([sign_flip(seed), sign_flip(seed)])
    assert outcome.seeds == 2
    assert outcome.p_value == pytest.approx(2 / 2 ** 6, abs=0.015)


def test_permutation_test_is_deterministic_and_never_zero():
    differences = np.ones(200)                                                   # first model right everywhere
    first = paired_permutation_test([sign_flip(differences)])
    assert first == paired_permutation_test([sign_flip(differences)])
    assert first.p_value == pytest.approx(1 / (PERMUTATIONS + 1))
    no_difference = paired_permutation_test([sign_flip(np.zeros(50))])
    assert no_difference.p_value == 1.0 and no_difference.difference == 0.0
    assert paired_permutation_test([]) is None
