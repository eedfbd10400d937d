"""The headline ratios of a benchmark run and the targets they are compared with.

The targets are fixed here and are never adjusted to the numbers a machine
happens to reach. A missed target is reported with its shortfall.
"""

from dataclasses import dataclass

from benchmarks.stats import ratio

# Decimal gigabyte, as in the target "stack RSS <= 1.8 GB".
GIGABYTE = 1e9


@dataclass(frozen=True)
class Target:
    """One measured quantity, its limit and the direction in which it passes."""

    key: str
    description: str
    comparison: str  # ">=" or "<="
    threshold: float
    unit: str


TARGETS: tuple[Target, ...] = (
    Target("facade_vs_raw_ort", "Facade /v1/classify peak throughput / raw ORT best batch throughput", ">=", 0.85, "x"),
    Target("ours_vs_stock_c16", "This project's TorchServe handler / stock handler, throughput at concurrency 16", ">=", 1.4, "x"),
    Target("facade_p50_c1_vs_raw_b1", "Facade /v1/classify p50 at concurrency 1 / raw ORT batch-1 p50", "<=", 1.3, "x"),
    Target("int8_vs_fp32", "INT8 / FP32 raw ORT best batch throughput", ">=", 1.8, "x"),
    Target("int8_top1_drop", "FP32 top-1 minus INT8 top-1 on the validation split", "<=", 1.0, "points"),
    Target("price_p99_c8", "Facade /v1/price p99 latency at concurrency 8", "<=", 20.0, "ms"),
    Target("stack_rss", "RSS of JVM + workers + facade with both models loaded", "<=", 1.8, "GB"),
)


def level_at(series: dict | None, concurrency: int) -> dict | None:
    """Return the closed-loop level of a served series at the given concurrency, or None."""
    if not series:
        return None
    for level in series["levels"]:
        if level.get("mode") == "closed" and level.get("concurrency") == concurrency:
            return level
    return None


def peak_throughput(series: dict | None) -> float | None:
    """Return the highest closed-loop requests/s of a served series, or None when it has no levels."""
    if not series:
        return None
    values = [level["throughput_rps"] for level in series["levels"] if level.get("mode") == "closed"]
    return max(values) if values else None


def _throughput_at(series: dict | None, concurrency: int) -> float | None:
    level = level_at(series, concurrency)
    return level["throughput_rps"] if level else None


def _latency_at(series: dict | None, concurrency: int, key: str) -> float | None:
    level = level_at(series, concurrency)
    return level["latency"][key] if level else None


def compute_ratios(results: dict) -> dict[str, float | None]:
    """Compute every target's value and the informational ratios from a results dict.

    A value is None when the run skipped the measurement behind it.
    """
    served = results.get("served", {})
    inprocess = results.get("inprocess", {})
    raw = inprocess.get("ort_fp32")
    int8 = inprocess.get("ort_int8")
    eager = inprocess.get("torch_eager")
    accuracy = results.get("accuracy") or {}
    memory = results.get("memory") or {}

    raw_best = raw["best_images_per_s"] if raw else None
    raw_b1_p50 = raw["batch1_p50_ms"] if raw else None
    fp32_top1 = (accuracy.get("fp32") or {}).get("top1")
    int8_top1 = (accuracy.get("int8") or {}).get("top1")
    rss = memory.get("rss_total_bytes")

    return {
        "facade_vs_raw_ort": ratio(peak_throughput(served.get("facade_classify")), raw_best),
        "ours_vs_stock_c16": ratio(_throughput_at(served.get("torchserve_onnx"), 16), _throughput_at(served.get("torchserve_stock"), 16)),
        "facade_p50_c1_vs_raw_b1": ratio(_latency_at(served.get("facade_classify"), 1, "p50_ms"), raw_b1_p50),
        "int8_vs_fp32": ratio(int8["best_images_per_s"] if int8 else None, raw_best),
        "int8_top1_drop": (fp32_top1 - int8_top1) * 100 if fp32_top1 is not None and int8_top1 is not None else None,
        "price_p99_c8": _latency_at(served.get("facade_price"), 8, "p99_ms"),
        "stack_rss": rss / GIGABYTE if rss is not None else None,
        # Informational: not targets, but they locate the losses between the layers.
        "torchserve_vs_raw_ort": ratio(peak_throughput(served.get("torchserve_onnx")), raw_best),
        "facade_vs_torchserve": ratio(peak_throughput(served.get("facade_classify")), peak_throughput(served.get("torchserve_onnx"))),
        "ours_vs_stock_peak": ratio(peak_throughput(served.get("torchserve_onnx")), peak_throughput(served.get("torchserve_stock"))),
        "torch_eager_vs_raw_ort": ratio(eager["best_images_per_s"] if eager else None, raw_best),
        "facade_predict_vs_raw_ort": ratio(peak_throughput(served.get("facade_predict")), raw_best),
    }


def evaluate_target(target: Target, value: float | None) -> dict:
    """Compare a value with its target; the shortfall is the relative distance to the threshold when missed."""
    row = {
        "key": target.key,
        "description": target.description,
        "comparison": target.comparison,
        "threshold": target.threshold,
        "unit": target.unit,
        "value": value,
        "met": None,
        "shortfall_percent": None,
    }
    if value is None:
        return row

    met = value >= target.threshold if target.comparison == ">=" else value <= target.threshold
    row["met"] = met
    if not met:
        row["shortfall_percent"] = abs(value - target.threshold) / target.threshold * 100
    return row


def evaluate_targets(ratios: dict[str, float | None]) -> list[dict]:
    """Evaluate every target in TARGETS against the computed ratios."""
    return [evaluate_target(target, ratios.get(target.key)) for target in TARGETS]
