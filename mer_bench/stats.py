"""Statistics over seeds: mean and sample std, t-based confidence intervals, and paired tests.

Every function here is deterministic for the same inputs (the permutation test draws from a fixed seed), so a board
built twice from the same result files is byte-identical.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

CONFIDENCE = 0.95          # level of every confidence interval on a board
PERMUTATIONS = 2000        # random swaps per permutation test: p-values resolve to about 0.0005
PERMUTATION_SEED = 20240   # fixed, so a rebuilt board gets the same p-values
_BLOCK = 250               # permutations evaluated together: bounds memory to (block x samples)
_EQUAL = 1e-12             # absorbs float noise when a permuted statistic equals the observed one


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """(mean, sample standard deviation with ddof=1, n) over the defined values; std is None for fewer than 2."""
    defined = _defined(values)
    n = len(defined)
    if n == 0:
        return None, None, 0
    mean = sum(defined) / n
    if n < 2:
        return mean, None, n
    variance = sum((v - mean) ** 2 for v in defined) / (n - 1)
    return mean, math.sqrt(variance), n


def _defined(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


@dataclass(frozen=True)
class Summary:
    """Mean, sample std (ddof=1) and t-based confidence interval of one metric over seeds."""

    mean: float | None
    std: float | None
    n: int
    ci_low: float | None
    ci_high: float | None


def t_interval(mean: float | None, std: float | None, n: int,
               confidence: float = CONFIDENCE) -> tuple[float | None, float | None]:
    """Student-t interval mean +- t(1 - alpha/2, n - 1) * std / sqrt(n); (None, None) for fewer than 2 values."""
    if mean is None or std is None or n < 2:
        return None, None
    half_width = float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return mean - half_width, mean + half_width


def summarize(values: Sequence[float | None], confidence: float = CONFIDENCE) -> Summary:
    """`Summary` over the defined (non-null, finite) values."""
    mean, std, n = mean_std(values)
    low, high = t_interval(mean, std, n, confidence)
    return Summary(mean, std, n, low, high)


@dataclass(frozen=True)
class TestOutcome:
    """A paired comparison of two models on one metric: which test, the observed difference, the p-value."""

    method: str                 # "permutation" or "t-test"
    difference: float           # mean over matched seeds of (first - second)
    p_value: float
    seeds: int                  # matched seeds the test used


def paired_t_test(first: Sequence[float], second: Sequence[float]) -> TestOutcome | None:
    """Two-sided paired t-test across matched seeds; None when fewer than 2 pairs.

    Identical differences on every seed have no spread: a zero difference is no evidence (p = 1), a constant non-zero
    one is as strong as it gets (p = 0), which is the limit of the t statistic in both cases.
    """
    pairs = [(float(a), float(b)) for a, b in zip(first, second, strict=True)
             if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    if len(pairs) < 2:
        return None
    differences = np.array([a - b for a, b in pairs])
    mean = float(differences.mean())
    if np.ptp(differences) <= _EQUAL:
        return TestOutcome("t-test", mean, 1.0 if abs(mean) <= _EQUAL else 0.0, len(pairs))
    p_value = float(scipy_stats.ttest_rel([a for a, _ in pairs], [b for _, b in pairs]).pvalue)
    return TestOutcome("t-test", mean, p_value, len(pairs))


def _random_swaps(rng: np.random.Generator, rounds: int, size: int) -> np.ndarray:
    """(rounds, size) independent fair coin flips; drawn as random bytes, eight flips per draw."""
    packed = rng.integers(0, 256, size=(rounds, (size + 7) // 8), dtype=np.uint8)
    return np.unpackbits(packed, axis=1, count=size).astype(bool)


# A function of a boolean swap matrix (rounds, samples) -> (rounds,) metric differences first - second, where True
# means "exchange the two models' predictions for this sample". An all-False row gives the observed difference.
SwappedDifference = Callable[[np.ndarray], np.ndarray]


def paired_permutation_test(seeds: Sequence[tuple[int, SwappedDifference]], rounds: int = PERMUTATIONS,
                            seed: int = PERMUTATION_SEED) -> TestOutcome | None:
    """Two-sided paired permutation test (approximate randomisation) pooled over matched seeds.

    `seeds` holds, per matched seed, the number of test samples and the swapped-difference function. The statistic is
    the mean over seeds of the per-seed metric difference, the same average the board shows. Under the null
    hypothesis the two models' predictions of a sample are exchangeable, so each (seed, sample) pair is swapped with
    probability 1/2. p = (1 + #{|permuted| >= |observed|}) / (rounds + 1), which is never 0.
    """
    if not seeds:
        return None
    observed = float(np.mean([difference(np.zeros((1, size), dtype=bool))[0] for size, difference in seeds]))
    if not math.isfinite(observed):
        return None
    rng = np.random.default_rng(seed)
    permuted = np.zeros(rounds)
    for size, difference in seeds:
        for start in range(0, rounds, _BLOCK):
            block = min(_BLOCK, rounds - start)
            permuted[start:start + block] += difference(_random_swaps(rng, block, size))
    permuted /= len(seeds)
    # A permutation whose metric is undefined (nan) counts as extreme: that keeps the test conservative.
    extreme = int(np.sum(~(np.abs(permuted) < abs(observed) - _EQUAL)))
    return TestOutcome("permutation", observed, (1 + extreme) / (rounds + 1), len(seeds))
