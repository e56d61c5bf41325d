"""Percentiles and timing helpers shared by the contenders (stdlib only)."""

from __future__ import annotations

import math


def percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile of already sorted values (no interpolation)."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_us(samples_ns: list[int]) -> dict[str, float]:
    """p50 and p99 in microseconds."""
    ordered = sorted(samples_ns)
    return {"p50_us": percentile(ordered, 50) / 1e3, "p99_us": percentile(ordered, 99) / 1e3}
