"""deploy/entrypoint.py, run outside Docker: help, dry runs, the health check and a real `all` start."""

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import psutil
import pytest

from frontend_api.archives import price_fields_from_archive
from tests.conftest import REPO_ROOT
from training.labels import PRODUCT_GROUPS

ENTRYPOINT = REPO_ROOT / "deploy" / "entrypoint.py"
COMMANDS = ("all", "torchserve", "facade", "healthcheck", "build-demo-models")
STARTUP_TIMEOUT_S = 300
STOP_TIMEOUT_S = 60


def run_entrypoint(*arguments: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the entrypoint script as the image does, in a clean FPS_ environment."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("FPS_")}
    return subprocess.run(
        [sys.executable, str(ENTRYPOINT), *arguments],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def properties(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return dict(pairs)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = run_entrypoint(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: entrypoint.py" in result.stdout


def test_torchserve_dry_run_config(tmp_path):
    extra = tmp_path / "extra.properties"
    extra.write_text("# comment\ndisable_system_metrics=true\njob_queue_size=7\n", encoding="utf-8")
    env = {"FPS_TS_JVM_HEAP": "768m", "FPS_TS_JOB_QUEUE_SIZE": "42", "FPS_TS_EXTRA_PROPERTIES": str(extra)}

    result = run_entrypoint("torchserve", "--dry-run", "--work-dir", str(tmp_path / "work"), env=env)
    assert result.returncode == 0, result.stderr
    config = properties(json.loads(result.stdout)["config_properties"])

    assert config["inference_address"] == "http://0.0.0.0:8080"
    assert config["management_address"] == "http://0.0.0.0:8081"
    assert config["metrics_address"] == "http://0.0.0.0:8082"
    assert config["disable_token_authorization"] == "true"
    assert config["vmargs"].startswith("-Xmx768m ")
    assert config["disable_system_metrics"] == "true"
    # The extra properties file wins over the generated value.
    assert config["job_queue_size"] == "7"


def test_all_dry_run_keeps_torchserve_private_with_tokens(tmp_path):
    result = run_entrypoint("all", "--dry-run", "--work-dir", str(tmp_path), env={"FPS_TS_JOB_QUEUE_SIZE": "42"})
    assert result.returncode == 0, result.stderr
    config = properties(json.loads(result.stdout)["config_properties"])

    assert config["inference_address"].startswith("http://127.0.0.1:")
    assert config["grpc_inference_address"] == "127.0.0.1"
    assert config["disable_token_authorization"] == "false"
    assert config["enable_model_api"] == "false"
    assert config["job_queue_size"] == "42"
    assert config["vmargs"].startswith("-Xmx512m ")


def test_token_auth_flag_overrides_the_environment(tmp_path):
    result = run_entrypoint("torchserve", "--dry-run", "--token-auth", "--work-dir", str(tmp_path), env={"FPS_TS_TOKEN_AUTH": "false"})
    assert result.returncode == 0, result.stderr
    assert properties(json.loads(result.stdout)["config_properties"])["disable_token_authorization"] == "false"


@pytest.mark.parametrize(
    "variable,value",
    [("FPS_TS_TOKEN_AUTH", "maybe"), ("FPS_TS_JOB_QUEUE_SIZE", "many"), ("FPS_TS_START_TIMEOUT_S", "soon")],
)
def test_invalid_environment_is_named(variable, value):
    result = run_entrypoint("torchserve", "--dry-run", env={variable: value})
    assert result.returncode == 2
    assert variable in result.stderr


def test_invalid_extra_properties_fail_cleanly(tmp_path):
    extra = tmp_path / "extra.properties"
    extra.write_text("no separator here\n", encoding="utf-8")
    result = run_entrypoint("torchserve", "--dry-run", "--extra-properties", str(extra))
    assert result.returncode == 1
    assert "extra.properties:1" in result.stderr
    assert "Traceback" not in result.stderr


def test_facade_price_fields_from_archive(model_store_dir, tmp_path):
    expected = ",".join(price_fields_from_archive(model_store_dir / "price_regressor.mar"))

    result = run_entrypoint("facade", "--dry-run", "--model-store", str(model_store_dir), "--work-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["environment"] == {"FPS_PRICE_FIELDS": expected}
    assert plan["exec"][1:] == ["-m", "frontend_api", "run"]

    explicit = run_entrypoint(
        "facade", "--dry-run", "--model-store", str(model_store_dir), env={"FPS_PRICE_FIELDS": "name,description"}
    )
    assert json.loads(explicit.stdout)["environment"] == {}


def test_build_demo_models_dry_run(tmp_path):
    result = run_entrypoint("build-demo-models", "--dry-run", "--out", str(tmp_path), "--profile", "gpu")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["profile"] == "gpu"
    assert plan["out"] == str(tmp_path)


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    """Returns 200 on /readyz and /ping and 503 elsewhere, and records each request's path and headers."""

    requests: list[tuple[str, dict]] = []

    def do_GET(self):
        RecordingHandler.requests.append((self.path, dict(self.headers)))
        self.send_response(200 if self.path in ("/readyz", "/ping") else 503)
        self.end_headers()

    def log_message(self, format, *args):
        pass


@pytest.fixture()
def http_stub():
    RecordingHandler.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_healthcheck_defaults_to_the_facade_readyz(http_stub, tmp_path):
    result = run_entrypoint("healthcheck", "--work-dir", str(tmp_path), env={"FPS_PORT": str(http_stub)})
    assert result.returncode == 0, result.stderr
    assert RecordingHandler.requests[-1][0] == "/readyz"


def test_healthcheck_fails_when_unready(http_stub, tmp_path):
    unready = run_entrypoint("healthcheck", "--url", f"http://127.0.0.1:{http_stub}/other")
    assert unready.returncode == 1
    assert "503" in unready.stderr

    closed = run_entrypoint("healthcheck", "--url", f"http://127.0.0.1:{free_port()}/readyz")
    assert closed.returncode == 1
    assert "failed" in closed.stderr


def test_healthcheck_uses_the_recorded_target_and_key(http_stub, tmp_path):
    key_file = tmp_path / "key_file.json"
    key_file.write_text(json.dumps({"inference": {"key": "k-inference"}, "management": {"key": "k-management"}}))
    target = {"url": f"http://127.0.0.1:{http_stub}/ping", "key_file": str(key_file)}
    (tmp_path / "healthcheck.json").write_text(json.dumps(target), encoding="utf-8")

    result = run_entrypoint("healthcheck", "--work-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    path, headers = RecordingHandler.requests[-1]
    assert path == "/ping"
    assert headers["Authorization"] == "Bearer k-inference"


def test_healthcheck_fails_while_the_key_file_is_missing(tmp_path):
    target = {"url": "http://127.0.0.1:9/ping", "key_file": str(tmp_path / "key_file.json")}
    (tmp_path / "healthcheck.json").write_text(json.dumps(target), encoding="utf-8")
    result = run_entrypoint("healthcheck", "--work-dir", str(tmp_path))
    assert result.returncode == 1
    assert "key" in result.stderr


@pytest.fixture()
def running_stack(model_store_dir, tmp_path):
    """`entrypoint.py all` on free ports, as `docker run` starts the image; stopped with SIGTERM."""
    port = free_port()
    work_dir = tmp_path / "work"
    log_path = tmp_path / "entrypoint.log"
    clean = {key: value for key, value in os.environ.items() if not key.startswith("FPS_")}
    env = {**clean, "FPS_HOST": "127.0.0.1", "FPS_PORT": str(port)}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(ENTRYPOINT), "all", "--model-store", str(model_store_dir), "--work-dir", str(work_dir)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    stack = {"process": process, "url": f"http://127.0.0.1:{port}", "work_dir": work_dir, "log": log_path, "env": env}
    try:
        yield stack
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def wait_until_ready(stack) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if stack["process"].poll() is not None:
            pytest.fail(f"entrypoint.py all exited with {stack['process'].returncode}:\n{stack['log'].read_text()[-3000:]}")
        try:
            if httpx.get(f"{stack['url']}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    pytest.fail(f"/readyz not 200 within {STARTUP_TIMEOUT_S} s:\n{stack['log'].read_text()[-3000:]}")


def test_all_serves_predictions_and_stops_on_sigterm(running_stack, sample_root):
    wait_until_ready(running_stack)
    process = running_stack["process"]
    children = psutil.Process(process.pid).children(recursive=True)
    assert any("java" in child.name() for child in children), "TorchServe's Java frontend is not a child of the entrypoint"

    photo = next((sample_root / "hm" / "images").rglob("*.jpg"))
    with open(photo, "rb") as stream:
        response = httpx.post(f"{running_stack['url']}/v1/classify", files={"image": (photo.name, stream, "image/jpeg")}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["category"]["label"] in PRODUCT_GROUPS

    # TorchServe stays on the loopback address with token authorization on.
    config = properties((running_stack["work_dir"] / "config.properties").read_text(encoding="utf-8"))
    assert config["inference_address"].startswith("http://127.0.0.1:")
    unauthorized = httpx.get(f"{config['inference_address']}/ping", timeout=10)
    assert unauthorized.status_code != 200

    healthcheck = run_entrypoint("healthcheck", "--work-dir", str(running_stack["work_dir"]), env=running_stack["env"])
    assert healthcheck.returncode == 0, healthcheck.stderr

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=STOP_TIMEOUT_S) == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], f"processes left running after SIGTERM: {[child.pid for child in alive]}"


def test_missing_archives_fail_with_a_message(tmp_path):
    result = run_entrypoint(
        "torchserve", "--model-store", str(tmp_path), "--work-dir", str(tmp_path / "work"), "--start-timeout", "5", timeout=60
    )
    assert result.returncode == 1
    assert "not found" in result.stderr
    assert "Traceback" not in result.stderr
