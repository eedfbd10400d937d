"""Secure defaults: loopback listeners, token authorization, no pickle at serve time, clean logs and errors.

The configuration checks read the config.properties that the session's TorchServe was
started with, and then check that the running servers behave accordingly.
"""

import ast
import base64
import ipaddress
import uuid
import zipfile
from pathlib import Path

import httpx
import psutil
import pytest

from frontend_api.settings import DEFAULT_MAX_UPLOAD_BYTES
from model_store.torchserve import CONFIG_NAME
from tests.facade_fixtures import start_facade, stop_facade
from tests.hardening.conftest import CLASSIFIER, PRICE_MODEL, assert_no_stack_trace

LOOPBACK = "127.0.0.1"
ARCHIVE_SUFFIXES = {".onnx", ".json", ".yaml", ".py"}
# Modules that deserialize pickles or pull in the training stack, which loads them.
FORBIDDEN_IMPORTS = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "torch", "sklearn", "training"}


def read_properties(path: Path) -> dict[str, str]:
    properties = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            properties[key.strip()] = value.strip()
    return properties


@pytest.fixture(scope="module")
def properties(torchserve) -> dict[str, str]:
    return read_properties(torchserve.work_dir / CONFIG_NAME)


# --- TorchServe configuration --------------------------------------------------------


@pytest.mark.parametrize("key", ["inference_address", "management_address", "metrics_address"])
def test_http_listener_on_loopback(key, properties):
    assert httpx.URL(properties[key]).host == LOOPBACK, properties[key]


@pytest.mark.parametrize("key", ["grpc_inference_address", "grpc_management_address"])
def test_grpc_listener_on_loopback(key, properties):
    assert properties[key] == LOOPBACK


def test_model_api_off(properties):
    assert properties["enable_model_api"] == "false"


def test_token_authorization_on(properties):
    assert properties["disable_token_authorization"] == "false"


def test_allowed_urls_only_local_store(properties):
    allowed = properties["allowed_urls"].split(",")

    assert len(allowed) == 1, allowed
    assert allowed[0].startswith("file://"), allowed
    assert allowed[0].removeprefix("file://").replace("\\", "").startswith(properties["model_store"]), allowed


def test_max_request_size_matches_facade_limit(properties):
    assert int(properties["max_request_size"]) == DEFAULT_MAX_UPLOAD_BYTES


# --- What the running servers do ----------------------------------------------------


def listening_addresses(process: psutil.Process) -> set[str]:
    """Return the IPv4 addresses of the process's listening sockets; Java reports them IPv4-mapped (::ffff:a.b.c.d)."""
    addresses = set()
    for connection in process.net_connections(kind="inet"):
        if connection.status == psutil.CONN_LISTEN:
            address = ipaddress.ip_address(connection.laddr.ip)
            mapped = getattr(address, "ipv4_mapped", None)
            addresses.add(str(mapped or address))
    return addresses


def test_torchserve_listens_only_on_loopback(torchserve):
    processes = [torchserve.launcher, *torchserve.launcher.children(recursive=True)]
    addresses = set().union(*(listening_addresses(process) for process in processes))

    assert addresses == {LOOPBACK}, addresses


def test_facade_listens_only_on_loopback(facade):
    assert listening_addresses(psutil.Process(facade.process.pid)) == {LOOPBACK}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key"}], ids=["no-key", "wrong-key"])
def test_torchserve_rejects_missing_or_wrong_key(headers, torchserve, photo_bytes):
    # TorchServe 0.12 rejects a missing or wrong key with 400 and InvalidKeyException, not 401.
    inference = httpx.post(f"{torchserve.inference_url}/predictions/{CLASSIFIER}", content=photo_bytes, headers=headers, timeout=30)
    management = httpx.get(f"{torchserve.management_url}/models/{CLASSIFIER}", headers=headers, timeout=30)

    for response in (inference, management):
        assert response.status_code in (400, 401), response.text
        assert response.json()["type"] == "InvalidKeyException", response.text


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/models?url=https://example.com/model.mar"), ("POST", f"/models?url={CLASSIFIER}.mar"), ("DELETE", f"/models/{PRICE_MODEL}")],
    ids=["register-remote", "register-local", "unregister"],
)
def test_model_api_rejects_changes(method, path, torchserve):
    response = httpx.request(method, f"{torchserve.management_url}{path}", headers=torchserve.management_headers(), timeout=30)

    assert response.status_code == 405, response.text
    for model in (CLASSIFIER, PRICE_MODEL):
        assert torchserve.describe(model)[0]["workers"], f"{model} lost its workers"


@pytest.fixture(scope="module")
def facade_with_wrong_keys(torchserve, facade, tmp_path_factory):
    """A second facade in front of the session's TorchServe, configured with keys TorchServe never issued."""
    settings_env = {
        **facade.env,
        "FPS_TORCHSERVE_INFERENCE_KEY": "not-the-inference-key",
        "FPS_TORCHSERVE_MANAGEMENT_KEY": "not-the-management-key",
    }
    running = start_facade(settings_env, tmp_path_factory.mktemp("facade-wrong-keys") / "facade.log")
    yield running
    stop_facade(running)


def test_facade_with_wrong_key_reports_its_own_fault(facade_with_wrong_keys, photo_bytes):
    # The client did nothing wrong, so this must not be a 4xx that blames the request.
    with httpx.Client(base_url=facade_with_wrong_keys.base_url, timeout=30) as client:
        prediction = client.post("/v1/classify", files={"image": ("photo.jpg", photo_bytes, "image/jpeg")})
        readiness = client.get("/readyz")

    assert prediction.status_code == 502, prediction.text
    assert prediction.json()["error"] == "upstream_failed"
    assert "FPS_TORCHSERVE_INFERENCE_KEY" in prediction.json()["message"]
    assert "not-the-inference-key" not in prediction.text
    assert readiness.status_code == 503, readiness.text
    assert "FPS_TORCHSERVE_MANAGEMENT_KEY" in readiness.json()["models"][CLASSIFIER]["detail"]


# --- What the archives can load ------------------------------------------------------


@pytest.mark.parametrize("model", [CLASSIFIER, PRICE_MODEL])
def test_archive_holds_only_onnx_json_yaml_python(model, model_store_dir):
    with zipfile.ZipFile(model_store_dir / f"{model}.mar") as archive:
        names = archive.namelist()

    assert "model.onnx" in names
    assert {Path(name).suffix for name in names} <= ARCHIVE_SUFFIXES, names


def imported_modules(source: str) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            modules.add("__import__")
    return modules


def allows_pickle(source: str) -> bool:
    """True when any call passes allow_pickle=True (numpy.load would then unpickle)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "allow_pickle" and not (isinstance(keyword.value, ast.Constant) and keyword.value.value is False):
                    return True
    return False


@pytest.mark.parametrize("model", [CLASSIFIER, PRICE_MODEL])
def test_archive_code_loads_no_pickles(model, model_store_dir):
    with zipfile.ZipFile(model_store_dir / f"{model}.mar") as archive:
        sources = {name: archive.read(name).decode("utf-8") for name in archive.namelist() if name.endswith(".py")}

    assert sources, "the archive has no handler code"
    for name, source in sources.items():
        forbidden = imported_modules(source) & (FORBIDDEN_IMPORTS | {"__import__"})
        assert not forbidden, f"{name} imports {sorted(forbidden)}"
        assert not allows_pickle(source), f"{name} passes allow_pickle"


# --- Facade logs and error bodies ----------------------------------------------------


def test_facade_logs_no_image_text_or_keys(facade, facade_client, torchserve, photo_bytes, product_fields):
    marker = f"private-text-{uuid.uuid4().hex}"
    client_secret = f"client-secret-{uuid.uuid4().hex}"
    photo_base64 = base64.b64encode(photo_bytes).decode()
    log_offset = facade.log_path.stat().st_size
    request_ids = [f"log-check-{index}-{uuid.uuid4().hex[:8]}" for index in range(5)]

    requests = [
        ("/v1/predict", {"files": {"image": ("photo.jpg", photo_bytes, "image/jpeg")}, "data": {**product_fields, "description": marker}}),
        ("/v1/predict", {"json": {**product_fields, "description": marker, "image_base64": photo_base64}}),
        ("/v1/price", {"json": {**product_fields, "name": marker, "colour": 5}}),
        ("/v1/price", {"json": {**product_fields, "description": marker * 400}}),
        ("/v1/classify", {"files": {"image": ("photo.jpg", marker.encode() * 10, "image/jpeg")}}),
    ]
    for request_id, (path, body) in zip(request_ids, requests):
        headers = {"X-Request-ID": request_id, "Authorization": f"Bearer {client_secret}"}
        facade_client.post(path, headers=headers, **body)

    # Slice the bytes, not the text: earlier tests log non-ASCII text, so a byte offset
    # used as a character index would skip the first lines of this test.
    log = facade.log_path.read_bytes()[log_offset:].decode("utf-8", errors="replace")
    for request_id in request_ids:
        assert request_id in log, f"no log line for request {request_id}, so this check reads the wrong log"
    assert marker not in log
    assert client_secret not in log
    assert photo_base64[100:160] not in log
    for key in (torchserve.inference_key, torchserve.management_key):
        assert key and key not in log


ERROR_REQUESTS = {
    "broken-json": ("POST", "/v1/price", {"content": b'{"name": ', "headers": {"Content-Type": "application/json"}}),
    "wrong-type": ("POST", "/v1/price", {"json": {"name": 1, "description": ""}}),
    "not-an-image": ("POST", "/v1/classify", {"files": {"image": ("a.jpg", b"plain text", "image/jpeg")}}),
    "truncated-jpeg": ("POST", "/v1/classify", {"files": {"image": ("a.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 64, "image/jpeg")}}),
    "unsupported-type": ("POST", "/v1/classify", {"content": b"x", "headers": {"Content-Type": "text/plain"}}),
    "too-large": ("POST", "/v1/classify", {"content": b"x", "headers": {"Content-Type": "text/plain", "Content-Length": str(DEFAULT_MAX_UPLOAD_BYTES + 1)}}),
    "unknown-route": ("GET", "/v1/unknown", {}),
    "wrong-method": ("GET", "/v1/price", {}),
}


@pytest.mark.parametrize("case", sorted(ERROR_REQUESTS))
def test_error_body_is_json_without_stack_trace(case, facade):
    method, path, options = ERROR_REQUESTS[case]
    if case == "too-large":
        # httpx corrects a wrong Content-Length, so this one goes through a raw request.
        response = _raw_post_with_declared_length(facade.base_url, path, DEFAULT_MAX_UPLOAD_BYTES + 1)
        assert response.startswith(b"HTTP/1.1 413"), response[:200]
        assert b"Traceback" not in response
        assert b'File "' not in response
        return

    response = httpx.request(method, f"{facade.base_url}{path}", timeout=30, **options)

    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert body.get("message") or body.get("detail"), body
    assert_no_stack_trace(response)


def _raw_post_with_declared_length(base_url: str, path: str, declared: int) -> bytes:
    import socket

    url = httpx.URL(base_url)
    with socket.create_connection((url.host, url.port), timeout=30) as connection:
        connection.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {url.host}\r\nContent-Type: text/plain\r\nContent-Length: {declared}\r\n\r\n".encode()
        )
        return connection.recv(65536)
