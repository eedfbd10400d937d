"""A short run of `python -m benchmarks run` against the session's real TorchServe and facade."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from benchmarks.report import LATENCY_PLOT, REPORT_MD, RESULTS_JSON, THROUGHPUT_PLOT

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "benchmarks" / "results.schema.json"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

EXPECTED_SERIES = {
    "torchserve_onnx",
    "torchserve_onnx_fullsize",
    "torchserve_onnx_open",
    "facade_classify",
    "facade_classify_fullsize",
    "facade_predict",
    "facade_price",
    "torchserve_price",
}


@pytest.fixture(scope="module")
def smoke_run(torchserve, facade, tmp_path_factory) -> Path:
    """Run the smoke profile in attach mode with two concurrency levels; return the results folder."""
    out_dir = tmp_path_factory.mktemp("bench") / "run"
    env = {**os.environ, "FPS_TORCHSERVE_INFERENCE_KEY": torchserve.inference_key or ""}
    command = [
        sys.executable, "-m", "benchmarks", "run",
        "--profile", "smoke",
        "--out", str(out_dir),
        "--torchserve-url", torchserve.inference_url,
        "--facade-url", facade.base_url,
        "--metrics-url", torchserve.metrics_url,
        "--concurrency", "1,2",
        "--warmup", "0.3",
        "--duration", "1",
    ]  # fmt: skip
    completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, f"benchmark run failed:\n{completed.stderr[-4000:]}"
    return out_dir


@pytest.fixture(scope="module")
def smoke_results(smoke_run) -> dict:
    return json.loads((smoke_run / RESULTS_JSON).read_text())


def test_smoke_results_match_schema(smoke_results):
    schema = json.loads(SCHEMA_PATH.read_text())

    jsonschema.validate(smoke_results, schema)


def test_smoke_run_measures_every_series(smoke_results):
    assert set(smoke_results["served"]) == EXPECTED_SERIES
    assert smoke_results["mode"] == "attach"


def test_smoke_run_has_no_failed_request(smoke_results):
    for name, series in smoke_results["served"].items():
        for level in series["levels"]:
            assert level["failed"] == 0, f"{name}: {level['errors']}"
            assert level["dropped"] == 0, name
            assert level["succeeded"] > 0, name


def test_smoke_run_concurrency_levels(smoke_results):
    for name in ("torchserve_onnx", "facade_classify", "facade_predict"):
        levels = smoke_results["served"][name]["levels"]
        assert [level["concurrency"] for level in levels] == [1, 2], name
        assert all(level["mode"] == "closed" for level in levels), name

    open_levels = smoke_results["served"]["torchserve_onnx_open"]["levels"]
    assert [level["mode"] for level in open_levels] == ["open"]
    assert open_levels[0]["target_rate"] > 0


def test_smoke_run_measures_client_cpu(smoke_results):
    # In attach mode the run has no server pids, so only its own CPU time is measured.
    for name in ("torchserve_onnx", "facade_price"):
        for level in smoke_results["served"][name]["levels"]:
            cpu = level["cpu_ms_per_request"]
            assert set(cpu) == {"load generator"}, name
            assert cpu["load generator"] > 0, name


def test_smoke_run_reads_server_metrics(smoke_results):
    level = smoke_results["served"]["torchserve_onnx"]["levels"][0]

    assert level["server"]["source"] == "prometheus"
    assert level["server"]["batches"] >= 1
    assert level["server"]["mean_batch_size"] >= 1
    assert level["server"]["preprocess_ms"] > 0
    assert level["server"]["inference_ms"] > 0


def test_smoke_run_writes_report_and_plots(smoke_run, smoke_results):
    markdown = (smoke_run / REPORT_MD).read_text()

    assert "## Served, closed loop" in markdown
    assert "| facade_price | 2 |" in markdown
    for name in (THROUGHPUT_PLOT, LATENCY_PLOT):
        assert (smoke_run / name).read_bytes()[:8] == PNG_SIGNATURE
