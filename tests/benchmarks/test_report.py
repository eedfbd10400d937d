"""Unit tests of the report writer and the target evaluation, on fixed known results."""

import json

import pytest

from benchmarks.report import (
    LATENCY_PLOT,
    REPORT_MD,
    RESULTS_JSON,
    THROUGHPUT_PLOT,
    format_errors,
    render_markdown,
    table,
    write_report,
)
from benchmarks.targets import TARGETS, compute_ratios, evaluate_target, evaluate_targets

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _latency(p50, p99, count=100):
    return {"count": count, "mean_ms": p50, "max_ms": p99, "p50_ms": p50, "p90_ms": p50, "p95_ms": p99, "p99_ms": p99}


def _level(concurrency, throughput, p50, p99, errors=None, server=None):
    return {
        "mode": "closed",
        "concurrency": concurrency,
        "target_rate": None,
        "elapsed_s": 10.0,
        "requests": 100,
        "succeeded": 100,
        "failed": sum((errors or {}).values()),
        "dropped": 0,
        "errors": errors or {},
        "throughput_rps": throughput,
        "latency": _latency(p50, p99),
        "server": server,
    }


def _engine(name, best, batch1_p50):
    return {
        "name": name,
        "batches": [
            {"batch_size": 1, "runs": 10, "elapsed_s": 1.0, "images_per_s": best / 2, "latency": _latency(batch1_p50, batch1_p50 * 2)},
            {"batch_size": 4, "runs": 10, "elapsed_s": 1.0, "images_per_s": best, "latency": _latency(100.0, 120.0)},
        ],
        "best_batch_size": 4,
        "best_images_per_s": best,
        "batch1_p50_ms": batch1_p50,
    }


@pytest.fixture
def known_results():
    """Results with round numbers, so each ratio and table cell is known exactly."""
    return {
        "schema_version": 1,
        "created": "2025-01-01T00:00:00+00:00",
        "profile": "smoke",
        "machine": {"cpu_model": "Test CPU", "cpu_count": 2, "memory_gb": 24.0, "load_average": [0.5, 0.5, 0.5]},
        "inputs": {"source": "sample", "stored_photos": 10, "fullsize_photos": 2, "text_rows": 5},
        "model": {"arch": "resnet50", "image_size": 224, "checkpoint": "runs/x/model.pt", "trained": True},
        "inprocess": {
            "ort_fp32": _engine("ort_fp32", best=40.0, batch1_p50=20.0),
            "ort_int8": _engine("ort_int8", best=60.0, batch1_p50=12.0),
            "torch_eager": _engine("torch_eager", best=20.0, batch1_p50=45.0),
        },
        "accuracy": {
            "fp32": {"images": 200, "top1": 0.905, "macro_f1": 0.8812},
            "int8": {"images": 200, "top1": 0.890, "macro_f1": 0.8701},
        },
        "served": {
            "torchserve_onnx": {"levels": [_level(1, 20.0, 30.0, 40.0), _level(16, 35.0, 400.0, 600.0)]},
            "torchserve_stock": {"levels": [_level(1, 10.0, 60.0, 80.0), _level(16, 20.0, 800.0, 900.0)]},
            "facade_classify": {
                "levels": [
                    _level(
                        1, 18.0, 24.0, 50.0, server={"queue_ms": 6.0, "preprocess_ms": 4.0, "inference_ms": 30.0, "mean_batch_size": 1.0}
                    ),
                    _level(16, 32.0, 450.0, 700.0, errors={"HTTP 503": 2}),
                ]
            },
            "facade_price": {
                "levels": [
                    {
                        **_level(8, 200.0, 9.0, 25.0),
                        "cpu_ms_per_request": {
                            "load generator": 1.0,
                            "facade": 1.5,
                            "TorchServe frontend (JVM)": 1.25,
                            "TorchServe model worker": 0.25,
                        },
                    }
                ]
            },
        },
        "memory": {
            "processes": [
                {"pid": 10, "name": "java", "cmdline": "java", "rss_bytes": 500_000_000, "pss_bytes": 450_000_000},
                {"pid": 11, "name": "python", "cmdline": "worker", "rss_bytes": 700_000_000, "pss_bytes": 600_000_000},
            ],
            "rss_total_bytes": 1_200_000_000,
            "pss_total_bytes": 1_050_000_000,
        },
    }


def test_ratios_from_known_results(known_results):
    ratios = compute_ratios(known_results)

    assert ratios["facade_vs_raw_ort"] == pytest.approx(32.0 / 40.0)
    assert ratios["ours_vs_stock_c16"] == pytest.approx(35.0 / 20.0)
    assert ratios["facade_p50_c1_vs_raw_b1"] == pytest.approx(24.0 / 20.0)
    assert ratios["int8_vs_fp32"] == pytest.approx(60.0 / 40.0)
    assert ratios["int8_top1_drop"] == pytest.approx(1.5)
    assert ratios["price_p99_c8"] == pytest.approx(25.0)
    assert ratios["stack_rss"] == pytest.approx(1.2)
    assert ratios["torch_eager_vs_raw_ort"] == pytest.approx(0.5)


def test_targets_met_and_missed(known_results):
    rows = {row["key"]: row for row in evaluate_targets(compute_ratios(known_results))}

    assert rows["ours_vs_stock_c16"]["met"] is True
    assert rows["facade_p50_c1_vs_raw_b1"]["met"] is True
    assert rows["stack_rss"]["met"] is True
    assert rows["facade_vs_raw_ort"]["met"] is False
    assert rows["facade_vs_raw_ort"]["shortfall_percent"] == pytest.approx((0.85 - 0.8) / 0.85 * 100)
    assert rows["price_p99_c8"]["met"] is False
    assert rows["price_p99_c8"]["shortfall_percent"] == pytest.approx(25.0)
    assert rows["int8_top1_drop"]["met"] is False


def test_target_without_measurement():
    row = evaluate_target(TARGETS[0], None)

    assert row["met"] is None
    assert row["shortfall_percent"] is None


def test_markdown_table_layout():
    assert table(["a", "b"], [["1", "2"]]) == "| a | b |\n| --- | --- |\n| 1 | 2 |"


def test_format_errors():
    assert format_errors({}) == "0"
    assert format_errors({"ReadTimeout": 1, "HTTP 503": 2}) == "HTTP 503: 2, ReadTimeout: 1"


def test_markdown_contains_known_rows(known_results):
    markdown = render_markdown(known_results)

    assert (
        "| Facade /v1/classify peak throughput / raw ORT best batch throughput | 0.80 x | >= 0.85 x | missed by 5.9% |"
        in markdown
    )
    assert "| Facade /v1/price p99 latency at concurrency 8 | 25.00 ms | <= 20 ms | missed by 25.0% |" in markdown
    assert "| RSS of JVM + workers + facade with both models loaded | 1.20 GB | <= 1.8 GB | met |" in markdown
    assert "| facade_classify | 1 | 18.0 | 24.0 | 24.0 | 50.0 | 50.0 | 0 | 6.0 | 4.0 | 30.0 | 1.00 |" in markdown
    assert "| facade_classify | 16 | 32.0 | 450.0 | 450.0 | 700.0 | 700.0 | HTTP 503: 2 | n/a | n/a | n/a | n/a |" in markdown
    assert "| ort_int8 | 4 | 60.0 | 100.0 | 120.0 |" in markdown
    assert "| int8 | 200 | 89.00 | 0.8701 |" in markdown
    assert "| total |  | 1200 | 1050 |" in markdown
    assert "| facade_price | 8 | 200.0 | 1.00 | 1.50 | 1.25 | 0.25 | 4.00 |" in markdown


def test_markdown_leaves_out_skipped_sections(known_results):
    del known_results["accuracy"]
    del known_results["memory"]

    markdown = render_markdown(known_results)

    assert "## Accuracy" not in markdown
    assert "## Resident memory" not in markdown
    assert "## CPU time per request" in markdown
    assert "| INT8 / FP32 raw ORT best batch throughput | 1.50 x | >= 1.8 x | missed by 16.7% |" in markdown
    assert "| FP32 top-1 minus INT8 top-1 on the validation split | n/a | <= 1 points | not measured |" in markdown


def test_write_report_files(known_results, tmp_path):
    paths = write_report(known_results, tmp_path / "run")

    assert paths["json"] == tmp_path / "run" / RESULTS_JSON
    written = json.loads(paths["json"].read_text())
    assert written["served"] == known_results["served"]
    assert written["ratios"]["ours_vs_stock_c16"] == pytest.approx(1.75)
    assert [row["key"] for row in written["targets"]] == [target.key for target in TARGETS]

    assert (tmp_path / "run" / REPORT_MD).read_text() == render_markdown(written)
    for name in (THROUGHPUT_PLOT, LATENCY_PLOT):
        assert (tmp_path / "run" / name).read_bytes()[:8] == PNG_SIGNATURE
