"""Session fixtures that run the facade with uvicorn on free 127.0.0.1 ports.

`facade` is the facade in front of the session's TorchServe (the `torchserve` fixture
from serving_fixtures.py). `facade_without_torchserve` points at a closed port, for
the tests of what clients see while TorchServe is down. Both run
`python -m frontend_api run` in a subprocess, the same command a deployment runs.
"""

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from frontend_api.archives import price_fields_from_archive

REPO_ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 60


@dataclass
class RunningFacade:
    """A facade process: its base URL, the settings it was started with and its log file."""

    base_url: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    """Return a port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_facade(settings_env: dict[str, str], log_path: Path) -> RunningFacade:
    """Start `python -m frontend_api run` with FPS_ settings and wait until /healthz responds."""
    port = free_port()
    env = {**os.environ, **settings_env, "FPS_HOST": "127.0.0.1", "FPS_PORT": str(port)}
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "frontend_api", "run"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    facade = RunningFacade(f"http://127.0.0.1:{port}", settings_env, log_path, process)

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"The facade exited with {process.returncode} during startup:\n{facade.log_tail()}")
        try:
            if httpx.get(f"{facade.base_url}/healthz", timeout=1).status_code == 200:
                return facade
        except httpx.TransportError:
            pass
        time.sleep(0.2)

    stop_facade(facade)
    raise RuntimeError(f"The facade did not respond to /healthz within {STARTUP_TIMEOUT_S} s:\n{facade.log_tail()}")


def stop_facade(facade: RunningFacade) -> None:
    """Stop the facade process with SIGTERM (uvicorn's graceful shutdown), then SIGKILL if it hangs."""
    if facade.process.poll() is None:
        facade.process.terminate()
        try:
            facade.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            facade.process.kill()
            facade.process.wait(timeout=5)


@pytest.fixture(scope="session")
def facade(torchserve, model_store_dir, tmp_path_factory) -> RunningFacade:
    """The facade in front of the session's TorchServe, with token authorization on."""
    price_fields = price_fields_from_archive(Path(model_store_dir) / "price_regressor.mar")
    settings_env = {
        "FPS_TORCHSERVE_INFERENCE_URL": torchserve.inference_url,
        "FPS_TORCHSERVE_MANAGEMENT_URL": torchserve.management_url,
        "FPS_TORCHSERVE_INFERENCE_KEY": torchserve.inference_key or "",
        "FPS_TORCHSERVE_MANAGEMENT_KEY": torchserve.management_key or "",
        "FPS_PRICE_FIELDS": ",".join(price_fields),
        "FPS_LOG_LEVEL": "INFO",
    }
    running = start_facade(settings_env, tmp_path_factory.mktemp("facade") / "facade.log")
    yield running
    stop_facade(running)


@pytest.fixture(scope="session")
def facade_without_torchserve(tmp_path_factory) -> RunningFacade:
    """A facade whose TorchServe URLs point at a closed port, as when TorchServe is stopped."""
    closed = f"http://127.0.0.1:{free_port()}"
    settings_env = {
        "FPS_TORCHSERVE_INFERENCE_URL": closed,
        "FPS_TORCHSERVE_MANAGEMENT_URL": closed,
        "FPS_RETRY_AFTER_S": "2",
    }
    running = start_facade(settings_env, tmp_path_factory.mktemp("facade-down") / "facade.log")
    yield running
    stop_facade(running)
