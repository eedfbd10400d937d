"""Command 1 (`make serve`) from a fresh model store up to its first prediction, then Ctrl-C.

This runs `python -m frontend_api stack`, the command behind `make serve`: it trains
the demo models on the bundled sample, packs the archives, starts TorchServe and the
facade, and prints a curl command. The test sends exactly that request, interrupts
the stack with SIGINT and checks that both servers stopped. It takes a few minutes on
two CPU cores, most of them training.
"""

import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from training.labels import PRODUCT_GROUPS

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 600
STOP_TIMEOUT_S = 90


class OutputReader:
    """Collects a process's output lines in a background thread, so reading never blocks the test."""

    def __init__(self, process: subprocess.Popen):
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(process.stdout,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, prefix: str, timeout_s: float) -> str | None:
        """Return the first stripped line that starts with `prefix`, or None when the output ends or time runs out."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                return None
            if line is None:
                return None
            self.lines.append(line)
            if line.strip().startswith(prefix):
                return line.strip()

    def tail(self, count: int = 60) -> str:
        return "\n".join(self.lines[-count:])


def parse_curl(command: str) -> tuple[str, dict[str, str], Path]:
    """Split the printed `curl -s -F image=@PATH -F name=VALUE ... URL` into URL, text fields and photo path."""
    words = shlex.split(command)
    assert words[:2] == ["curl", "-s"], command
    url = words[-1]
    fields = {}
    photo = None
    for flag, value in zip(words[2:-1:2], words[3:-1:2]):
        assert flag == "-F", command
        name, _, content = value.partition("=")
        if content.startswith("@"):
            photo = REPO_ROOT / content[1:]
        else:
            fields[name] = content
    assert photo is not None, command
    return url, fields, photo


@pytest.fixture
def stack_process(tmp_path):
    command = [
        sys.executable, "-m", "frontend_api", "stack",
        "--model-store", str(tmp_path / "store"),
        "--work-dir", str(tmp_path / "work"),
        "--port", "0",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    yield process, tmp_path
    if process.poll() is None:
        process.kill()
        process.wait(timeout=30)


def test_stack_builds_serves_and_stops(stack_process):
    process, tmp_path = stack_process
    output = OutputReader(process)

    torchserve_line = output.wait_for("TorchServe:", STARTUP_TIMEOUT_S)
    assert torchserve_line is not None, f"the stack printed no TorchServe URL:\n{output.tail()}"
    curl_line = output.wait_for("curl ", 60)
    assert curl_line is not None, f"the stack printed no curl command:\n{output.tail()}"

    for archive in ("fashion_classifier.mar", "price_regressor.mar"):
        assert (tmp_path / "store" / archive).is_file(), archive

    url, fields, photo = parse_curl(curl_line)
    assert photo.is_file(), photo
    with open(photo, "rb") as image:
        response = httpx.post(url, files={"image": (photo.name, image, "image/jpeg")}, data=fields, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["category"]["label"] in PRODUCT_GROUPS
    assert body["price"]["value"] >= 0
    assert body["product_group_source"] == "classifier"

    # The build trains with torch in a child process, so the serving process never loads it.
    libraries = {Path(region.path).name for region in psutil.Process(process.pid).memory_maps()}
    assert not any(name.startswith("libtorch") for name in libraries), "the stack process loaded torch"

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=STOP_TIMEOUT_S) == 0, output.tail()

    torchserve_url = torchserve_line.split()[1]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{torchserve_url}/ping", timeout=5)
    with pytest.raises(httpx.ConnectError):
        httpx.get(url.replace("/v1/predict", "/healthz"), timeout=5)
