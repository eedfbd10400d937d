"""A TorchServe that stops responding: the facade's timeouts and its connection limit.

SIGSTOP freezes TorchServe's JVM. The kernel still accepts connections and buffers a
few MB of each request, so the facade's calls neither fail nor complete. Every
request must still get a response from the facade, and the facade must serve again
once TorchServe continues.
"""

import contextlib
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.hardening.conftest import PrivateStack, private_stack

READ_TIMEOUT_S = 2
CONNECT_TIMEOUT_S = 0.5
RETRY_AFTER_S = 3
# A request still open after the facade's own timeouts plus this margin has hung.
HANG_MARGIN_S = 10
CLIENT_TIMEOUT_S = CONNECT_TIMEOUT_S + READ_TIMEOUT_S + HANG_MARGIN_S
# More than the loopback socket buffers take in while the JVM reads nothing (about
# 4 MB on the send side plus the receiver's window), and below the 10 MiB upload limit.
LARGE_UPLOAD_BYTES = 9 * 1024 * 1024
# Pause between the two requests that compete for the only connection.
STAGGER_S = 0.5


@pytest.fixture(scope="module")
def stack(model_store_dir, tmp_path_factory) -> Iterator[PrivateStack]:
    facade_env = {
        "FPS_READ_TIMEOUT_S": str(READ_TIMEOUT_S),
        "FPS_CONNECT_TIMEOUT_S": str(CONNECT_TIMEOUT_S),
        "FPS_RETRY_AFTER_S": str(RETRY_AFTER_S),
        "FPS_MAX_CONNECTIONS": "1",
    }
    with private_stack(model_store_dir, tmp_path_factory.mktemp("frozen"), facade_env) as running:
        yield running


@contextlib.contextmanager
def frozen(stack: PrivateStack) -> Iterator[None]:
    """Stop TorchServe's JVM with SIGSTOP for the block; continue it afterwards, also on failure."""
    jvm = next(child for child in stack.torchserve.launcher.children() if child.name() == "java")
    jvm.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        jvm.send_signal(signal.SIGCONT)


def classify(stack: PrivateStack, image: bytes) -> httpx.Response:
    files = {"image": ("photo.jpg", image, "image/jpeg")}
    return httpx.post(f"{stack.facade_url}/v1/classify", files=files, timeout=CLIENT_TIMEOUT_S)


def test_frozen_large_upload_gets_504(stack, photo_bytes):
    # Bytes after the JPEG's end marker keep it a valid photo of the size needed.
    large_photo = photo_bytes + bytes(LARGE_UPLOAD_BYTES - len(photo_bytes))

    with frozen(stack):
        response = classify(stack, large_photo)

    assert response.status_code == 504, response.text
    assert response.json()["error"] == "upstream_timeout"
    assert f"FPS_READ_TIMEOUT_S={READ_TIMEOUT_S}" in response.json()["message"]
    assert response.headers["Retry-After"] == str(RETRY_AFTER_S)


def test_busy_connection_gets_503_naming_limit(stack, photo_bytes):
    responses: list[httpx.Response] = []

    with frozen(stack):
        # Whichever request takes the only connection first waits for the read timeout
        # (504), and the other one gets 503 because the connection stays busy.
        senders = [threading.Thread(target=lambda: responses.append(classify(stack, photo_bytes))) for _ in range(2)]
        for sender in senders:
            sender.start()
            time.sleep(STAGGER_S)
        for sender in senders:
            sender.join(CLIENT_TIMEOUT_S)

    by_status = {response.status_code: response for response in responses}
    assert sorted(by_status) == [503, 504], [response.text for response in responses]
    busy = by_status[503]
    assert busy.json()["error"] == "model_unavailable"
    assert "FPS_MAX_CONNECTIONS=1" in busy.json()["message"]
    assert busy.headers["Retry-After"] == str(RETRY_AFTER_S)
    assert by_status[504].json()["error"] == "upstream_timeout"


def test_facade_serves_after_torchserve_continues(stack, photo_bytes):
    with frozen(stack):
        frozen_response = classify(stack, photo_bytes)

    response = classify(stack, photo_bytes)

    assert frozen_response.status_code == 504, frozen_response.text
    assert response.status_code == 200, response.text
    assert response.json()["category"]["label"]
