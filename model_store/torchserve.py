"""Start, check and stop a TorchServe instance that serves the model archives.

`ServerConfig` contains the settings and renders TorchServe's config.properties.
`TorchServe` runs one instance in a dedicated working directory, because TorchServe
writes logs/, key_file.json and its extracted models into the directory it starts
in. Its temporary directory (TMPDIR and TEMP) also points into the working directory,
so several instances on one machine keep separate pid files and worker sockets.

Lifecycle: `start()` launches `torchserve --start --foreground` (the Python launcher,
which runs the Java frontend as its child) and waits until every model has a READY
worker. `stop()` terminates the Java frontend by pid, which stops the Python workers,
and kills any process of the instance that is still alive after the timeout.

The processes get `worker_site/` first on PYTHONPATH: its sitecustomize.py defers
torch's import, which TorchServe's worker would otherwise pay for at start although
the ONNX Runtime handlers never use it (see that file; FPS_TS_LAZY_TORCH=false turns
it off).
"""

import dataclasses
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL_STORE = PACKAGE_DIR
DEFAULT_WORK_DIR = PACKAGE_DIR / "build" / "torchserve"
# Contains the sitecustomize.py that keeps torch out of the workers until a handler uses it.
WORKER_SITE_DIR = PACKAGE_DIR / "worker_site"
MODEL_NAMES = ("fashion_classifier", "price_regressor")

CONFIG_NAME = "config.properties"
KEY_FILE_NAME = "key_file.json"
LOG_NAME = "torchserve.log"
STATE_NAME = "torchserve.json"

# Matches the facade's default upload limit, so every upload the facade accepts also
# fits through TorchServe.
DEFAULT_MAX_REQUEST_BYTES = 10 * 1024 * 1024

DEFAULT_START_TIMEOUT_S = 180
DEFAULT_STOP_TIMEOUT_S = 30


class TorchServeError(RuntimeError):
    """TorchServe failed to start, did not become ready in time, or returned an unexpected response."""


@dataclass(frozen=True)
class ServerConfig:
    """Settings of one TorchServe instance; `render()` turns them into config.properties."""

    model_store: Path = DEFAULT_MODEL_STORE
    models: tuple[str, ...] = MODEL_NAMES
    address: str = "127.0.0.1"
    inference_port: int = 8080
    management_port: int = 8081
    metrics_port: int = 8082
    grpc_inference_port: int = 7070
    grpc_management_port: int = 7071
    # Token authorization: clients send "Authorization: Bearer <key>" with the keys
    # TorchServe writes to key_file.json. Turn it off only for local development.
    token_auth: bool = True
    # TorchServe 0.12 rejects a key after this many minutes; its default is 60.
    token_expiration_min: int = 7 * 24 * 60
    jvm_heap: str = "512m"
    # Requests TorchServe queues per model before it responds with 503.
    job_queue_size: int = 100
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    default_workers_per_model: int = 1
    default_response_timeout_s: int = 120
    extra_properties: dict = field(default_factory=dict)

    @property
    def inference_url(self) -> str:
        return f"http://{self.address}:{self.inference_port}"

    @property
    def management_url(self) -> str:
        return f"http://{self.address}:{self.management_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.address}:{self.metrics_port}"

    def with_free_ports(self) -> "ServerConfig":
        """Return a copy whose five ports were free on the configured address a moment ago."""
        ports = free_ports(5, self.address)
        return dataclasses.replace(
            self,
            inference_port=ports[0],
            management_port=ports[1],
            metrics_port=ports[2],
            grpc_inference_port=ports[3],
            grpc_management_port=ports[4],
        )

    def render(self) -> str:
        """Render config.properties; every listener binds to `address` and the model API stays off."""
        model_store = Path(self.model_store).resolve()
        archives = [f"{name}={name}.mar" for name in self.models]
        properties = {
            "inference_address": self.inference_url,
            "management_address": self.management_url,
            "metrics_address": self.metrics_url,
            "grpc_inference_address": self.address,
            "grpc_inference_port": self.grpc_inference_port,
            "grpc_management_address": self.address,
            "grpc_management_port": self.grpc_management_port,
            # With the model API off, the management API cannot register or delete
            # models (it returns 405), so the models load from load_models at startup.
            "enable_model_api": "false",
            "model_store": model_store,
            "load_models": ",".join(archives),
            "allowed_urls": f"file://{re.escape(str(model_store))}/.*",
            "default_workers_per_model": self.default_workers_per_model,
            "default_response_timeout": self.default_response_timeout_s,
            "job_queue_size": self.job_queue_size,
            "max_request_size": self.max_request_bytes,
            "disable_token_authorization": "false" if self.token_auth else "true",
            "token_expiration_min": self.token_expiration_min,
            # ExitOnOutOfMemoryError lets a supervisor restart a frontend that ran out of
            # heap instead of leaving it half-working. With the default G1 collector the
            # JVM's RSS grew 35% during a 5-minute soak on 2 cores, most likely because G1
            # allocates in heap regions it has not touched before. With the serial
            # collector, which reuses one young generation, it levelled off after a minute.
            "vmargs": f"-Xmx{self.jvm_heap} -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError",
            # Prometheus format on the metrics API. Auto-detection publishes the
            # handlers' own metrics (batch size, preprocess and inference time) without
            # listing them in a metrics config file.
            "metrics_mode": "prometheus",
            "model_metrics_auto_detect": "true",
            **self.extra_properties,
        }
        lines = ["# Generated by model_store.torchserve.ServerConfig.render; edit the ServerConfig, not this file."]
        lines += [f"{key}={_escape_property(value)}" for key, value in properties.items()]
        return "\n".join(lines) + "\n"


def free_ports(count: int, address: str = "127.0.0.1") -> list[int]:
    """Return `count` distinct ports that were free on `address` a moment ago.

    Another process may take a port between this call and TorchServe's bind; the start
    then fails with the bind error in the log tail.
    """
    sockets = []
    try:
        for _ in range(count):
            probe = socket.socket()
            probe.bind((address, 0))
            sockets.append(probe)
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


class TorchServe:
    """One TorchServe instance running in `work_dir`; use it as a context manager or call start() and stop()."""

    def __init__(self, config: ServerConfig, work_dir: Path = DEFAULT_WORK_DIR):
        self.config = config
        self.work_dir = Path(work_dir).resolve()
        self.launcher: psutil.Process | None = None
        self._process: subprocess.Popen | None = None

    # --- URLs and keys -----------------------------------------------------------------

    @property
    def inference_url(self) -> str:
        return self.config.inference_url

    @property
    def management_url(self) -> str:
        return self.config.management_url

    @property
    def metrics_url(self) -> str:
        return self.config.metrics_url

    @property
    def inference_key(self) -> str | None:
        """Key for the inference API, read from key_file.json; None when token authorization is off."""
        return self._key("inference")

    @property
    def management_key(self) -> str | None:
        """Key for the management API, read from key_file.json; None when token authorization is off."""
        return self._key("management")

    def _key(self, kind: str) -> str | None:
        if not self.config.token_auth:
            return None
        return read_keys(self.work_dir)[kind]

    def inference_headers(self) -> dict[str, str]:
        """Headers that authorize an inference request."""
        return _bearer(self.inference_key)

    def management_headers(self) -> dict[str, str]:
        """Headers that authorize a management request."""
        return _bearer(self.management_key)

    # --- Lifecycle ---------------------------------------------------------------------

    def start(self, timeout_s: float = DEFAULT_START_TIMEOUT_S, detach: bool = False) -> "TorchServe":
        """Start TorchServe and wait until every model has a READY worker.

        `detach` starts the launcher in its own session, so it keeps running after this
        Python process exits (the CLI's `start`). Raises TorchServeError with the log
        tail when the launcher exits or the models are not ready within `timeout_s`.
        """
        missing = [name for name in self.config.models if not (Path(self.config.model_store) / f"{name}.mar").is_file()]
        if missing:
            raise TorchServeError(
                f"Archives {missing} not found in {self.config.model_store}; build them with `python -m model_store build`."
            )

        if (self.work_dir / STATE_NAME).is_file() and TorchServe.attach(self.work_dir).launcher is not None:
            raise TorchServeError(
                f"A TorchServe started earlier is still running in {self.work_dir}; stop it with `python -m model_store stop`."
            )

        temp_dir = self.work_dir / "tmp"
        temp_dir.mkdir(parents=True, exist_ok=True)
        (self.work_dir / KEY_FILE_NAME).unlink(missing_ok=True)
        config_path = self.work_dir / CONFIG_NAME
        config_path.write_text(self.config.render(), encoding="utf-8")

        command = [
            str(Path(sys.executable).with_name("torchserve")),
            "--start", "--foreground", "--ncs",
            "--ts-config", str(config_path),
            "--model-store", str(Path(self.config.model_store).resolve()),
        ]  # fmt: skip
        env = {**os.environ, "TMPDIR": str(temp_dir), "TEMP": str(temp_dir), "PYTHONPATH": _worker_pythonpath()}
        with open(self.work_dir / LOG_NAME, "wb") as log:
            process = subprocess.Popen(
                command, cwd=self.work_dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=detach
            )
        self._process = process
        self.launcher = psutil.Process(process.pid)
        logger.info("Started TorchServe launcher pid %d in %s", process.pid, self.work_dir)

        try:
            self.wait_until_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        self._write_state()
        return self

    def wait_until_ready(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> None:
        """Poll the management API until every model has a READY worker; raise TorchServeError on timeout."""
        deadline = time.monotonic() + timeout_s
        waiting_for = list(self.config.models)
        while time.monotonic() < deadline:
            if self._launcher_exited():
                raise TorchServeError(f"TorchServe exited during startup.\n{self.log_tail()}")
            waiting_for = [name for name in self.config.models if not self._has_ready_worker(name)]
            if not waiting_for:
                logger.info("TorchServe ready at %s with %s", self.inference_url, ", ".join(self.config.models))
                return
            time.sleep(0.5)
        raise TorchServeError(f"Models {waiting_for} were not READY within {timeout_s:.0f} s.\n{self.log_tail()}")

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """Stop the Java frontend and its workers by pid, killing whatever outlives `timeout_s`."""
        if self.launcher is not None:
            stop_process_tree(self.launcher, timeout_s)
            self.launcher = None
            logger.info("Stopped TorchServe in %s", self.work_dir)
        if self._process is not None:
            self._process.poll()  # collects the exit status, so Popen reports no running child
            self._process = None
        (self.work_dir / STATE_NAME).unlink(missing_ok=True)

    def __enter__(self) -> "TorchServe":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # --- Queries -----------------------------------------------------------------------

    def describe(self, model: str) -> list[dict]:
        """Return the management API's description of `model` (GET /models/{model})."""
        response = httpx.get(f"{self.management_url}/models/{model}", headers=self.management_headers(), timeout=5)
        if response.status_code != 200:
            raise TorchServeError(
                f"Describing model {model} failed with status {response.status_code}: {response.text[:300]}"
            )
        return response.json()

    def log_tail(self, lines: int = 60) -> str:
        """Return the last `lines` lines of the launcher's output (TorchServe logs to it too)."""
        path = self.work_dir / LOG_NAME
        if not path.is_file():
            return f"(no log at {path})"
        tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        return f"Last {len(tail)} lines of {path}:\n" + "\n".join(tail)

    def _launcher_exited(self) -> bool:
        if self._process is not None:
            return self._process.poll() is not None
        if self.launcher is None:
            return False
        # psutil counts an exited but unreaped process (a zombie) as running.
        try:
            return self.launcher.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    def _has_ready_worker(self, model: str) -> bool:
        try:
            response = httpx.get(f"{self.management_url}/models/{model}", headers=self.management_headers(), timeout=2)
        except (httpx.TransportError, OSError, KeyError, ValueError):
            # Not listening yet, or key_file.json not (completely) written yet.
            return False
        if response.status_code != 200:
            return False
        workers = response.json()[0].get("workers", [])
        return any(worker.get("status") == "READY" for worker in workers)

    def _write_state(self) -> None:
        state = {
            "launcher_pid": self.launcher.pid,
            "config": {
                key: (str(value) if isinstance(value, Path) else value)
                for key, value in dataclasses.asdict(self.config).items()
            },
        }
        (self.work_dir / STATE_NAME).write_text(json.dumps(state, indent=2), encoding="utf-8")

    @classmethod
    def attach(cls, work_dir: Path = DEFAULT_WORK_DIR) -> "TorchServe":
        """Return a handle on the instance that `start(detach=True)` left running in `work_dir`."""
        work_dir = Path(work_dir).resolve()
        state_path = work_dir / STATE_NAME
        if not state_path.is_file():
            raise TorchServeError(f"No running TorchServe recorded in {work_dir} ({STATE_NAME} not found).")
        state = json.loads(state_path.read_text(encoding="utf-8"))
        config = state["config"]
        config["model_store"] = Path(config["model_store"])
        config["models"] = tuple(config["models"])
        server = cls(ServerConfig(**config), work_dir)
        try:
            server.launcher = psutil.Process(state["launcher_pid"])
        except psutil.NoSuchProcess:
            server.launcher = None
        return server


def read_keys(work_dir: Path) -> dict[str, str]:
    """Read the inference, management and API keys from key_file.json in TorchServe's working directory."""
    path = Path(work_dir) / KEY_FILE_NAME
    data = json.loads(path.read_text(encoding="utf-8"))
    return {kind: data[kind]["key"] for kind in ("inference", "management", "API") if kind in data}


def stop_process_tree(root: psutil.Process, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> None:
    """Terminate `root`'s children (the Java frontend), then kill every process of the tree still alive."""
    try:
        descendants = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return

    for child in root.children():
        _signal(child, "terminate")
    _, alive = psutil.wait_procs([root, *descendants], timeout=timeout_s)
    for process in alive:
        logger.warning("Killing TorchServe process %d, which did not stop within %.0f s", process.pid, timeout_s)
        _signal(process, "kill")
    psutil.wait_procs(alive, timeout=5)


def _signal(process: psutil.Process, action: str) -> None:
    try:
        getattr(process, action)()
    except psutil.NoSuchProcess:
        pass


def _worker_pythonpath() -> str:
    """PYTHONPATH for TorchServe's processes: worker_site first, then the caller's entries."""
    entries = [str(WORKER_SITE_DIR)]
    if os.environ.get("PYTHONPATH"):
        entries.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(entries)


def _escape_property(value: object) -> str:
    # Java's Properties.load reads a backslash as an escape character, so backslashes
    # (in the allowed_urls regex) are doubled to reach TorchServe unchanged.
    return str(value).replace("\\", "\\\\")


def _bearer(key: str | None) -> dict[str, str]:
    return {} if key is None else {"Authorization": f"Bearer {key}"}
