"""Start and stop the servers a benchmark run measures: TorchServe and the facade, on 127.0.0.1.

TorchServe instances started here log their metrics (metrics_mode=log) instead of
publishing them for Prometheus, because the log keeps every per-batch value while a
Prometheus gauge keeps only the last one. The facade runs as its own process with
`python -m frontend_api run`, as in a deployment, so its CPU time is not the load
generator's.
"""

import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.servermetrics import MetricsEndpoint, MetricsLog
from model_store.torchserve import ServerConfig, TorchServe, stop_process_tree
from training.data import REPO_ROOT

logger = logging.getLogger(__name__)

FACADE_START_TIMEOUT_S = 60
FACADE_STOP_TIMEOUT_S = 15


@dataclass
class Endpoints:
    """Load targets and metric source of one run: TorchServe, the facade and their process ids."""

    torchserve_url: str
    torchserve_headers: dict[str, str]
    metrics: MetricsLog | MetricsEndpoint | None
    facade_url: str | None = None
    classifier_model: str = "fashion_classifier"
    price_model: str = "price_regressor"
    # Fields the price model reads (its manifest's); without them the direct price series is skipped.
    price_fields: list[str] | None = None
    root_pids: list[int] = field(default_factory=list)


def start_torchserve(store_dir: Path, models: tuple[str, ...], work_dir: Path, jvm_heap: str = "512m") -> TorchServe:
    """Start TorchServe on free 127.0.0.1 ports with the given archives and token authorization on."""
    config = ServerConfig(
        model_store=store_dir,
        models=models,
        jvm_heap=jvm_heap,
        extra_properties={"metrics_mode": "log"},
    ).with_free_ports()
    work_dir.mkdir(parents=True, exist_ok=True)
    server = TorchServe(config, work_dir)
    started = time.perf_counter()
    server.start()
    logger.info("TorchServe with %s ready in %.1f s", ", ".join(models), time.perf_counter() - started)
    return server


def torchserve_endpoints(server: TorchServe) -> Endpoints:
    """Describe a TorchServe started by `start_torchserve` as benchmark endpoints."""
    return Endpoints(
        torchserve_url=server.inference_url,
        torchserve_headers=server.inference_headers(),
        metrics=MetricsLog(server.work_dir / "logs"),
        root_pids=[server.launcher.pid] if server.launcher else [],
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Facade:
    """A facade process in front of one TorchServe; stop it with `stop()`."""

    def __init__(self, server: TorchServe, price_fields: list[str], log_path: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {
            **os.environ,
            "FPS_HOST": "127.0.0.1",
            "FPS_PORT": str(self.port),
            "FPS_TORCHSERVE_INFERENCE_URL": server.inference_url,
            "FPS_TORCHSERVE_MANAGEMENT_URL": server.management_url,
            "FPS_TORCHSERVE_INFERENCE_KEY": server.inference_key or "",
            "FPS_TORCHSERVE_MANAGEMENT_KEY": server.management_key or "",
            "FPS_PRICE_FIELDS": ",".join(price_fields),
        }
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "frontend_api", "run"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _wait_until_ready(self) -> None:
        """Poll /readyz until the facade reports both TorchServe models READY."""
        deadline = time.monotonic() + FACADE_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the facade exited with status {self.process.returncode} during startup:\n{self._log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2, trust_env=False).status_code == 200:
                    logger.info("facade ready at %s (pid %d)", self.url, self.process.pid)
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the facade at {self.url} was not ready within {FACADE_START_TIMEOUT_S} s:\n{self._log_tail()}")

    def stop(self) -> None:
        """Stop the facade with SIGTERM, then SIGKILL if it has not exited within FACADE_STOP_TIMEOUT_S."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=FACADE_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                logger.warning("facade pid %d did not stop within %d s; killing it", self.process.pid, FACADE_STOP_TIMEOUT_S)
                self.process.kill()
                self.process.wait(timeout=5)


def stop_torchserve(server: TorchServe) -> None:
    """Stop a TorchServe started here, also when its launcher is already gone."""
    try:
        server.stop()
    except Exception:  # noqa: BLE001 - a failed stop must not hide the benchmark's own error
        logger.exception("stopping TorchServe in %s failed", server.work_dir)
        if server.launcher is not None:
            stop_process_tree(server.launcher)
