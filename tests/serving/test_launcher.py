"""model_store.torchserve and the CLI: config.properties, startup failures and clean stops."""

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from model_store.archive import build_archive
from model_store.torchserve import ServerConfig, TorchServe, TorchServeError, free_ports

REPO_ROOT = Path(__file__).resolve().parents[2]


def properties(config: ServerConfig) -> dict[str, str]:
    """Parse config.properties; undoing doubled backslashes is the only escape Java would apply here."""
    lines = [line for line in config.render().splitlines() if line and not line.startswith("#")]
    return {key: value.replace("\\\\", "\\") for key, value in (line.split("=", 1) for line in lines)}


def test_config_binds_every_listener_to_loopback(tmp_path):
    rendered = properties(ServerConfig(model_store=tmp_path))
    assert rendered["inference_address"] == "http://127.0.0.1:8080"
    assert rendered["management_address"] == "http://127.0.0.1:8081"
    assert rendered["metrics_address"] == "http://127.0.0.1:8082"
    assert rendered["grpc_inference_address"] == "127.0.0.1"
    assert rendered["grpc_management_address"] == "127.0.0.1"


def test_config_secure_defaults(tmp_path):
    rendered = properties(ServerConfig(model_store=tmp_path))
    assert rendered["enable_model_api"] == "false"
    assert rendered["disable_token_authorization"] == "false"
    assert "-Xmx512m" in rendered["vmargs"].split()
    assert "-XX:+UseSerialGC" in rendered["vmargs"].split()
    assert rendered["max_request_size"] == str(10 * 1024 * 1024)
    assert rendered["load_models"] == "fashion_classifier=fashion_classifier.mar,price_regressor=price_regressor.mar"
    allowed = re.compile(rendered["allowed_urls"])
    assert allowed.fullmatch(f"file://{tmp_path.resolve()}/fashion_classifier.mar")
    assert not allowed.fullmatch("file:///etc/passwd")
    assert not allowed.fullmatch("https://example.com/fashion_classifier.mar")
    assert int(rendered["job_queue_size"]) > 0
    assert int(rendered["default_workers_per_model"]) == 1


def test_config_token_auth_can_be_disabled(tmp_path):
    rendered = properties(ServerConfig(model_store=tmp_path, token_auth=False))
    assert rendered["disable_token_authorization"] == "true"


def test_free_ports_are_distinct():
    ports = free_ports(5)
    assert len(set(ports)) == 5


def test_missing_archive_rejected(tmp_path):
    server = TorchServe(ServerConfig(model_store=tmp_path).with_free_ports(), tmp_path / "work")
    with pytest.raises(TorchServeError, match="fashion_classifier"):
        server.start(timeout_s=5)


def test_port_in_use_reports_exit(model_store_dir, tmp_path):
    config = ServerConfig(model_store=model_store_dir).with_free_ports()
    with socket.socket() as occupied:
        occupied.bind(("127.0.0.1", config.inference_port))
        occupied.listen()
        server = TorchServe(config, tmp_path / "work")
        with pytest.raises(TorchServeError) as raised:
            server.start(timeout_s=60)

    assert "TorchServe exited during startup" in str(raised.value)
    assert "Address already in use" in str(raised.value)


def test_failing_model_reports_log_tail_and_stops(demo_models, tmp_path):
    model_dir = tmp_path / "tampered"
    shutil.copytree(demo_models.classifier_dir, model_dir)
    with open(model_dir / "model.onnx", "ab") as onnx_file:
        onnx_file.write(b"\0")
    store = tmp_path / "store"
    build_archive(model_dir, "classifier", store)

    config = ServerConfig(model_store=store, models=("fashion_classifier",)).with_free_ports()
    server = TorchServe(config, tmp_path / "work")
    with pytest.raises(TorchServeError) as raised:
        server.start(timeout_s=30)

    assert "were not READY within 30 s" in str(raised.value)
    assert "SHA-256" in str(raised.value), "the log tail should show the worker's error"
    java_pid = int((tmp_path / "work" / "tmp" / ".model_server.pid").read_text())
    assert not psutil.pid_exists(java_pid) or psutil.Process(java_pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.parametrize("command", [[], ["build"], ["start"], ["status"], ["stop"]])
def test_cli_help(command):
    result = subprocess.run(
        [sys.executable, "-m", "model_store", *command, "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: python -m model_store" in result.stdout


def test_cli_stop_without_server_fails(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "model_store", "stop", "--work-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "No running TorchServe recorded" in result.stderr
