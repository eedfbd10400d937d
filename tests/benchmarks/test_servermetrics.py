"""Unit tests of reading TorchServe's metrics: log lines and Prometheus scrapes, on known text."""

import pytest

from benchmarks.servermetrics import (
    MODEL_METRICS_LOG,
    TS_METRICS_LOG,
    MetricsLog,
    parse_metric_lines,
    scrape_prometheus,
    summarize_scrapes,
)

# Lines in the format TorchServe 0.12 writes in metrics_mode=log.
MODEL_LINES = """\
2026-12-04T20:03:29,815 - HandlerPreprocessTime.Milliseconds:20.0|#ModelName:fashion_classifier,Level:Model|#hostname:vm,requestID:a,timestamp:1796414609
2026-12-04T20:03:29,816 - HandlerInferenceTime.Milliseconds:100.0|#ModelName:fashion_classifier,Level:Model|#hostname:vm,requestID:a,timestamp:1796414609
2026-12-04T20:03:29,818 - HandlerBatchSize.Count:4.0|#ModelName:fashion_classifier,Level:Model|#hostname:vm,requestID:a,timestamp:1796414609
2026-12-04T20:03:30,815 - HandlerPreprocessTime.Milliseconds:10.0|#ModelName:fashion_classifier,Level:Model|#hostname:vm,requestID:b,timestamp:1796414610
2026-12-04T20:03:30,816 - HandlerInferenceTime.Milliseconds:60.0|#ModelName:fashion_classifier,Level:Model|#hostname:vm,requestID:b,timestamp:1796414610
2026-12-04T20:03:30,818 - HandlerBatchSize.Count:2.0|#ModelName:fashion_classifier,Level:Model|#hostname:vm,requestID:b,timestamp:1796414610
2026-12-04T20:03:30,900 - ts_handler_preprocess.Milliseconds:30.0|#ModelName:stock_classifier,Level:Model|#hostname:vm,requestID:c,timestamp:1796414610
"""
TS_LINES = """\
2026-12-04T20:03:29,471 - ts_queue_latency_microseconds.Microseconds:3000.0|#model_name:fashion_classifier,model_version:default|#hostname:vm,timestamp:1796414609
2026-12-04T20:03:29,821 - ts_queue_latency_microseconds.Microseconds:1000.0|#model_name:fashion_classifier,model_version:default|#hostname:vm,timestamp:1796414609
2026-12-04T20:03:29,821 - Requests2XX.Count:1.0|#Level:Host|#hostname:vm,timestamp:1796414609
"""


def test_parse_metric_line():
    metrics = parse_metric_lines(MODEL_LINES.splitlines()[0] + "\nnot a metric line\n")

    assert metrics == [("HandlerPreprocessTime", 20.0, {"ModelName": "fashion_classifier", "Level": "Model"})]


def test_metrics_log_summarizes_lines_after_mark(tmp_path):
    (tmp_path / MODEL_METRICS_LOG).write_text("2026-12-04T20:00:00,000 - HandlerPreprocessTime.Milliseconds:999.0|#ModelName:fashion_classifier,Level:Model|#hostname:vm\n")
    (tmp_path / TS_METRICS_LOG).write_text("")
    log = MetricsLog(tmp_path)
    mark = log.mark()
    with open(tmp_path / MODEL_METRICS_LOG, "a") as stream:
        stream.write(MODEL_LINES)
    with open(tmp_path / TS_METRICS_LOG, "a") as stream:
        stream.write(TS_LINES)

    summary = log.summarize_since(mark, "fashion_classifier", requests=6)

    assert summary["batches"] == 2
    assert summary["preprocess_ms"] == pytest.approx(15.0)
    assert summary["inference_ms"] == pytest.approx(80.0)
    assert summary["mean_batch_size"] == pytest.approx(3.0)
    assert summary["queue_ms"] == pytest.approx(2.0)
    assert "batch_size_estimated" not in summary


def test_metrics_log_estimates_stock_batch_size(tmp_path):
    (tmp_path / MODEL_METRICS_LOG).write_text(MODEL_LINES)

    summary = MetricsLog(tmp_path).summarize_since((0, 0), "stock_classifier", requests=3)

    assert summary["batches"] == 1
    assert summary["preprocess_ms"] == pytest.approx(30.0)
    assert summary["mean_batch_size"] == pytest.approx(3.0)
    assert summary["batch_size_estimated"] is True


def test_metrics_log_missing_files(tmp_path):
    assert MetricsLog(tmp_path).summarize_since((0, 0), "fashion_classifier") is None


PROMETHEUS_BEFORE = """\
# HELP ts_inference_requests_total Total number of inference requests.
# TYPE ts_inference_requests_total counter
ts_inference_requests_total{model_name="fashion_classifier",model_version="default",hostname="vm",} 10.0
# HELP ts_queue_latency_microseconds Cumulative queue duration in microseconds
# TYPE ts_queue_latency_microseconds counter
ts_queue_latency_microseconds{model_name="fashion_classifier",model_version="default",hostname="vm",} 50000.0
# HELP HandlerBatchSize Torchserve prometheus histogram metric with unit: Count
# TYPE HandlerBatchSize histogram
HandlerBatchSize_bucket{ModelName="fashion_classifier",Level="Model",Hostname="vm",le="+Inf",} 5.0
HandlerBatchSize_count{ModelName="fashion_classifier",Level="Model",Hostname="vm",} 5.0
HandlerBatchSize_sum{ModelName="fashion_classifier",Level="Model",Hostname="vm",} 10.0
"""
PROMETHEUS_AFTER = """\
# HELP ts_inference_requests_total Total number of inference requests.
# TYPE ts_inference_requests_total counter
ts_inference_requests_total{model_name="fashion_classifier",model_version="default",hostname="vm",} 30.0
ts_inference_requests_total{model_name="price_regressor",model_version="default",hostname="vm",} 7.0
# HELP ts_queue_latency_microseconds Cumulative queue duration in microseconds
# TYPE ts_queue_latency_microseconds counter
ts_queue_latency_microseconds{model_name="fashion_classifier",model_version="default",hostname="vm",} 110000.0
# HELP HandlerInferenceTime Torchserve prometheus gauge metric with unit: Milliseconds
# TYPE HandlerInferenceTime gauge
HandlerInferenceTime{ModelName="fashion_classifier",Level="Model",Hostname="vm",} 42.0
# HELP HandlerBatchSize Torchserve prometheus histogram metric with unit: Count
# TYPE HandlerBatchSize histogram
HandlerBatchSize_bucket{ModelName="fashion_classifier",Level="Model",Hostname="vm",le="+Inf",} 10.0
HandlerBatchSize_count{ModelName="fashion_classifier",Level="Model",Hostname="vm",} 10.0
HandlerBatchSize_sum{ModelName="fashion_classifier",Level="Model",Hostname="vm",} 30.0
"""


def test_prometheus_scrapes_give_window_means():
    before = scrape_prometheus(PROMETHEUS_BEFORE, "fashion_classifier")
    after = scrape_prometheus(PROMETHEUS_AFTER, "fashion_classifier")

    summary = summarize_scrapes(before, after, "fashion_classifier")

    # 20 requests in 5 batches of 20 images in total; 60 ms of queueing over 20 requests.
    assert summary["batches"] == 5
    assert summary["mean_batch_size"] == pytest.approx(4.0)
    assert summary["queue_ms"] == pytest.approx(3.0)
    assert summary["inference_ms"] == pytest.approx(42.0)
    assert summary["preprocess_ms"] is None


def test_prometheus_scrape_filters_by_model():
    samples = scrape_prometheus(PROMETHEUS_AFTER, "price_regressor")

    assert samples == {"ts_inference_requests": 7.0}
