"""Unit tests of the benchmark statistics: percentiles, rates, summaries and level results."""

from collections import Counter

import pytest

from benchmarks.loadgen import LevelResult, LoadLimits, check_loopback_url
from benchmarks.stats import percentile, rate, ratio, summarize_latencies


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 50, 5.0),
        ([5.0], 99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        # rank = 0.5 * 3 = 1.5, halfway between 2 and 3
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        # rank = 0.9 * 3 = 2.7, so 3 + 0.7 * (4 - 3)
        ([1.0, 2.0, 3.0, 4.0], 90, 3.7),
        # Input order must not matter.
        ([4.0, 1.0, 3.0, 2.0], 90, 3.7),
        # rank = 0.99 * 9 = 8.91 over 10..100, so 90 + 0.91 * 10
        ([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0], 99, 99.1),
    ],
)
def test_percentile_linear_interpolation(values, q, expected):
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_rejects_empty_input():
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)


@pytest.mark.parametrize("q", [-1, 100.5])
def test_percentile_rejects_q_out_of_range(q):
    with pytest.raises(ValueError, match="0..100"):
        percentile([1.0], q)


def test_rate_divides_count_by_duration():
    assert rate(30, 2.0) == 15.0
    assert rate(0, 5.0) == 0.0


@pytest.mark.parametrize("duration", [0.0, -1.0])
def test_rate_rejects_non_positive_duration(duration):
    with pytest.raises(ValueError, match="positive"):
        rate(1, duration)


def test_ratio_handles_missing_values():
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(None, 2.0) is None
    assert ratio(3.0, None) is None
    assert ratio(3.0, 0.0) is None


def test_summarize_latencies_in_milliseconds():
    summary = summarize_latencies([0.001, 0.002, 0.003, 0.004])

    assert summary["count"] == 4
    assert summary["mean_ms"] == pytest.approx(2.5)
    assert summary["max_ms"] == pytest.approx(4.0)
    assert summary["p50_ms"] == pytest.approx(2.5)
    assert summary["p90_ms"] == pytest.approx(3.7)
    assert summary["p95_ms"] == pytest.approx(3.85)
    assert summary["p99_ms"] == pytest.approx(3.97)


def test_summarize_latencies_empty_level():
    summary = summarize_latencies([])

    assert summary["count"] == 0
    assert summary["p50_ms"] is None
    assert summary["p99_ms"] is None
    assert summary["mean_ms"] is None


def test_level_result_to_dict():
    level = LevelResult(
        mode="closed",
        concurrency=2,
        target_rate=None,
        elapsed_s=2.0,
        latencies_s=[0.010, 0.020, 0.030],
        errors=Counter({"HTTP 503": 1}),
    )

    row = level.to_dict()

    assert row["requests"] == 4
    assert row["succeeded"] == 3
    assert row["failed"] == 1
    assert row["errors"] == {"HTTP 503": 1}
    assert row["throughput_rps"] == pytest.approx(1.5)
    assert row["latency"]["p50_ms"] == pytest.approx(20.0)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080",
        "http://10.0.0.1:8080",
        "https://127.0.0.1:8443",
        "http://127.0.0.2:8080",
        "http://example.com",
        "http://127.0.0.1.example.com:80",
    ],
)
def test_loopback_check_rejects_other_hosts(url):
    with pytest.raises(ValueError, match="127.0.0.1"):
        check_loopback_url(url)


def test_loopback_check_accepts_loopback():
    check_loopback_url("http://127.0.0.1:8080")
    check_loopback_url("http://127.0.0.1:8080/predictions/x")


@pytest.mark.parametrize(
    "kwargs",
    [{"duration_s": 0}, {"warmup_s": -1}, {"max_requests": 0}],
)
def test_load_limits_reject_unbounded_values(kwargs):
    with pytest.raises(ValueError):
        LoadLimits(**kwargs)
