"""Statistics over seeds."""

from __future__ import annotations

import math
from collections.abc import Sequence


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """(mean, sample standard deviation with ddof=1, n) over the defined values; std is None for fewer than 2."""
    defined = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(defined)
    if n == 0:
        return None, None, 0
    mean = sum(defined) / n
    if n < 2:
        return mean, None, n
    variance = sum((v - mean) ** 2 for v in defined) / (n - 1)
    return mean, math.sqrt(variance), n
