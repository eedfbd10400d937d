"""Latency percentiles and rates for one measured level of a benchmark."""

from collections.abc import Sequence

import numpy as np

# The percentiles every level reports, as in Triton's perf_analyzer.
PERCENTILES: tuple[int, ...] = (50, 90, 95, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """Compute the q-th percentile (0..100) with linear interpolation between closest ranks.

    This is NumPy's default method: for sorted values x and rank r = q/100 * (n - 1),
    the result is x[floor(r)] + (r - floor(r)) * (x[floor(r) + 1] - x[floor(r)]).
    Raises ValueError for an empty sequence or q outside 0..100.
    """
    if len(values) == 0:
        raise ValueError("percentile of an empty sequence is undefined; measure at least one request")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be in 0..100, got {q}")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q, method="linear"))


def rate(count: int, duration_s: float) -> float:
    """Return events per second; raises ValueError for a non-positive duration."""
    if duration_s <= 0:
        raise ValueError(f"duration must be positive to compute a rate, got {duration_s} s")
    return count / duration_s


def summarize_latencies(latencies_s: Sequence[float]) -> dict[str, float | int | None]:
    """Summarize latencies given in seconds as count, mean, max and PERCENTILES, in milliseconds.

    An empty sequence gives count 0 and None for every statistic, because a level in
    which every request failed still belongs in the report.
    """
    summary: dict[str, float | int | None] = {"count": len(latencies_s)}
    if len(latencies_s) == 0:
        summary["mean_ms"] = None
        summary["max_ms"] = None
        for q in PERCENTILES:
            summary[f"p{q}_ms"] = None
        return summary

    values_ms = np.asarray(latencies_s, dtype=np.float64) * 1000.0
    summary["mean_ms"] = float(values_ms.mean())
    summary["max_ms"] = float(values_ms.max())
    for q in PERCENTILES:
        summary[f"p{q}_ms"] = percentile(values_ms, q)
    return summary


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """Return numerator / denominator, or None when either is missing or the denominator is zero."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator
