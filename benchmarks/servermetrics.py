"""Server-side split of a level's time, from TorchServe's metrics.

This project's handlers record HandlerPreprocessTime and HandlerInferenceTime (ms)
and HandlerBatchSize once per batch. The stock handlers record ts_handler_preprocess,
ts_handler_inference and ts_handler_postprocess (ms) when the archive's
model-config.yaml sets `handler: {profile: true}`. TorchServe's frontend records
ts_queue_latency_microseconds and ts_inference_latency_microseconds per request.

Two sources, both TorchServe 0.12:
- `MetricsLog` reads the lines appended to logs/model_metrics.log and logs/ts_metrics.log
  (metrics_mode=log). Every value is logged, so per-batch means are exact.
- `MetricsEndpoint` scrapes the Prometheus metrics API (metrics_mode=prometheus). The
  frontend's counters and the batch-size histogram give exact means over the window,
  but the handler times are gauges, which keep only the last batch's value.
"""

import logging
import re
from collections import defaultdict
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

logger = logging.getLogger(__name__)

MODEL_METRICS_LOG = "model_metrics.log"
TS_METRICS_LOG = "ts_metrics.log"

# 2025-01-01T00:00:00,000 - HandlerPreprocessTime.Milliseconds:3.2|#ModelName:m,Level:Model|#hostname:h,...
_METRIC_LINE = re.compile(r"(?P<name>[A-Za-z_]\w*)\.(?P<unit>[A-Za-z]+):(?P<value>[-+0-9.eE]+)\|#(?P<dimensions>[^|]*)\|")

_PREPROCESS = ("HandlerPreprocessTime", "ts_handler_preprocess")
_INFERENCE = ("HandlerInferenceTime", "ts_handler_inference")
_POSTPROCESS = ("ts_handler_postprocess",)
_BATCH_SIZE = "HandlerBatchSize"
_QUEUE_US = "ts_queue_latency_microseconds"
_LATENCY_US = "ts_inference_latency_microseconds"
_REQUESTS = "ts_inference_requests_total"


def parse_metric_lines(text: str) -> list[tuple[str, float, dict[str, str]]]:
    """Parse TorchServe metric log lines into (name, value, dimensions); other lines are skipped."""
    metrics = []
    for line in text.splitlines():
        match = _METRIC_LINE.search(line)
        if match is None:
            continue
        dimensions = {}
        for pair in match["dimensions"].split(","):
            key, _, value = pair.partition(":")
            if key:
                dimensions[key] = value
        metrics.append((match["name"], float(match["value"]), dimensions))
    return metrics


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _model_of(dimensions: dict[str, str]) -> str | None:
    # Handler metrics carry ModelName, the frontend's per-request metrics model_name.
    return dimensions.get("ModelName") or dimensions.get("model_name")


def summarize_logged_metrics(metrics: list[tuple[str, float, dict[str, str]]], model_name: str) -> dict:
    """Average one model's logged metrics: per batch for the handler times, per request for the frontend's."""
    values: dict[str, list[float]] = defaultdict(list)
    for name, value, dimensions in metrics:
        if _model_of(dimensions) == model_name:
            values[name].append(value)

    def first_present(names: tuple[str, ...]) -> list[float]:
        return next((values[name] for name in names if values.get(name)), [])

    preprocess = first_present(_PREPROCESS)
    queue_us = values.get(_QUEUE_US, [])
    latency_us = values.get(_LATENCY_US, [])
    return {
        "source": "log",
        "batches": len(preprocess),
        "preprocess_ms": _mean(preprocess),
        "inference_ms": _mean(first_present(_INFERENCE)),
        "postprocess_ms": _mean(first_present(_POSTPROCESS)),
        "mean_batch_size": _mean(values.get(_BATCH_SIZE, [])),
        "queue_ms": _mean(queue_us) / 1000 if queue_us else None,
        "frontend_latency_ms": _mean(latency_us) / 1000 if latency_us else None,
    }


def _estimate_batch_size(summary: dict, requests: int | None) -> dict:
    """Fill in mean_batch_size as requests / batches when the handler does not record it (the stock handler)."""
    if summary["mean_batch_size"] is None and requests and summary["batches"]:
        summary["mean_batch_size"] = requests / summary["batches"]
        summary["batch_size_estimated"] = True
    return summary


class MetricsLog:
    """Reads what TorchServe appended to its metric logs since a mark."""

    def __init__(self, log_dir: Path):
        self.paths = (Path(log_dir) / MODEL_METRICS_LOG, Path(log_dir) / TS_METRICS_LOG)

    def mark(self) -> tuple[int, ...]:
        """Return the current ends of the logs, for `summarize_since`."""
        return tuple(path.stat().st_size if path.is_file() else 0 for path in self.paths)

    def summarize_since(self, mark: tuple[int, ...], model_name: str, requests: int | None = None) -> dict | None:
        """Summarize the model's metrics logged after `mark`; None when TorchServe wrote no metric log.

        `requests` (the count the client measured) estimates the mean batch size of a
        handler that does not record it.
        """
        if not any(path.is_file() for path in self.paths):
            logger.warning("TorchServe metric logs %s not found; the server-side split is left out", self.paths)
            return None

        metrics = []
        for path, offset in zip(self.paths, mark, strict=True):
            if not path.is_file():
                continue
            with open(path, "rb") as stream:
                stream.seek(offset)
                metrics += parse_metric_lines(stream.read().decode("utf-8", errors="replace"))
        return _estimate_batch_size(summarize_logged_metrics(metrics, model_name), requests)


def scrape_prometheus(text: str, model_name: str) -> dict[str, float]:
    """Extract one model's samples from Prometheus text, keyed by sample name without a "_total" suffix.

    prometheus_client's parser adds "_total" to every counter sample, also to
    TorchServe's ts_queue_latency_microseconds, so the suffix is dropped everywhere.
    """
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if _model_of(sample.labels) != model_name:
                continue
            # Histogram buckets are not needed, only their _sum and _count.
            if sample.name.endswith("_bucket"):
                continue
            samples[sample.name.removesuffix("_total")] = sample.value
    return samples


def summarize_scrapes(before: dict[str, float], after: dict[str, float], model_name: str) -> dict:
    """Turn two scrapes into window means: counters and histograms as deltas, gauges as last values."""

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    requests = delta(_REQUESTS.removesuffix("_total"))
    batches = delta(f"{_BATCH_SIZE}_count")

    def last(names: tuple[str, ...]) -> float | None:
        return next((after[name] for name in names if name in after), None)

    return {
        "source": "prometheus",
        "batches": int(batches),
        # Gauges: the value of the last batch in the window, not a mean.
        "preprocess_ms": last(_PREPROCESS),
        "inference_ms": last(_INFERENCE),
        "postprocess_ms": last(_POSTPROCESS),
        "mean_batch_size": delta(f"{_BATCH_SIZE}_sum") / batches if batches else None,
        "queue_ms": delta(_QUEUE_US) / requests / 1000 if requests else None,
        "frontend_latency_ms": delta(_LATENCY_US) / requests / 1000 if requests else None,
    }


class MetricsEndpoint:
    """Scrapes TorchServe's Prometheus metrics API before and after a level."""

    def __init__(self, metrics_url: str, headers: dict[str, str] | None = None):
        self.url = metrics_url.rstrip("/") + "/metrics"
        self.headers = headers or {}

    def _scrape(self) -> str | None:
        try:
            response = httpx.get(self.url, headers=self.headers, timeout=10, trust_env=False)
        except httpx.HTTPError as error:
            logger.warning("scraping %s failed: %s; the server-side split is left out", self.url, error)
            return None
        if response.status_code != 200:
            logger.warning("scraping %s returned HTTP %d; the server-side split is left out", self.url, response.status_code)
            return None
        return response.text

    def mark(self) -> str | None:
        """Scrape the endpoint now; the text is the mark for `summarize_since`."""
        return self._scrape()

    def summarize_since(self, mark: str | None, model_name: str, requests: int | None = None) -> dict | None:
        """Summarize the model's metrics between the mark and now; None when a scrape failed."""
        after = self._scrape()
        if mark is None or after is None:
            return None
        summary = summarize_scrapes(scrape_prometheus(mark, model_name), scrape_prometheus(after, model_name), model_name)
        return _estimate_batch_size(summary, requests)
