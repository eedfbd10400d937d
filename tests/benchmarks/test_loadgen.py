"""Load generator tests against a small real HTTP server on 127.0.0.1."""

import asyncio
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from benchmarks.loadgen import LoadLimits, RequestSpec, run_closed_loop, run_open_loop

# Long enough that concurrent requests overlap at the server, short enough to keep tests fast.
SERVER_DELAY_S = 0.05


class _CountingHandler(BaseHTTPRequestHandler):
    """Respond to /ok with 200 and to /busy with 503 after a short delay, counting requests in flight."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        server = self.server
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        with server.lock:
            server.bodies.append((self.headers.get("Content-Type", ""), body))
            server.received += 1
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        time.sleep(SERVER_DELAY_S)
        with server.lock:
            server.in_flight -= 1

        status = 200 if self.path == "/ok" else 503
        body = b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


@pytest.fixture
def counting_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    server.daemon_threads = True
    server.lock = threading.Lock()
    server.received = 0
    server.bodies = []
    server.in_flight = 0
    server.max_in_flight = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def _post(path):
    return lambda index: RequestSpec("POST", path, content=f"request {index}".encode())


def test_closed_loop_keeps_concurrency_in_flight(counting_server):
    limits = LoadLimits(warmup_s=0, duration_s=1.0, request_timeout_s=10)

    result = asyncio.run(run_closed_loop(_url(counting_server), _post("/ok"), 4, limits))

    assert counting_server.max_in_flight == 4
    assert result.failed == 0
    assert result.succeeded == counting_server.received
    assert result.to_dict()["latency"]["count"] == result.succeeded


def test_closed_loop_stops_at_max_requests(counting_server):
    limits = LoadLimits(warmup_s=0, duration_s=30.0, max_requests=7, request_timeout_s=10)

    result = asyncio.run(run_closed_loop(_url(counting_server), _post("/ok"), 3, limits))

    assert result.succeeded == 7
    assert counting_server.received == 7


def test_closed_loop_warm_up_is_not_counted(counting_server):
    limits = LoadLimits(warmup_s=0.3, duration_s=30.0, max_requests=5, request_timeout_s=10)

    result = asyncio.run(run_closed_loop(_url(counting_server), _post("/ok"), 1, limits))

    assert result.succeeded == 5
    assert counting_server.received > 5


def test_closed_loop_counts_http_errors(counting_server):
    limits = LoadLimits(warmup_s=0, duration_s=30.0, max_requests=6, request_timeout_s=10)

    result = asyncio.run(run_closed_loop(_url(counting_server), _post("/busy"), 2, limits))

    assert result.succeeded == 0
    assert dict(result.errors) == {"HTTP 503": 6}
    assert result.to_dict()["latency"]["p50_ms"] is None


def test_each_body_kind_arrives_as_sent(counting_server):
    specs = [
        RequestSpec("POST", "/ok", content=b"\xff\xd8raw", headers={"Content-Type": "application/octet-stream"}),
        RequestSpec("POST", "/ok", json={"name": "Tee", "description": "cotton"}),
        RequestSpec("POST", "/ok", files={"image": ("tee.jpg", b"\xff\xd8photo", "image/jpeg")}, data={"name": "Tee"}),
    ]
    limits = LoadLimits(warmup_s=0, duration_s=30.0, max_requests=len(specs))

    result = asyncio.run(run_closed_loop(_url(counting_server), lambda index: specs[index], 1, limits))

    assert result.succeeded == 3
    (raw_type, raw), (json_type, json_body), (form_type, form) = counting_server.bodies
    assert (raw_type, raw) == ("application/octet-stream", b"\xff\xd8raw")
    assert json_type.startswith("application/json")
    assert json.loads(json_body) == {"name": "Tee", "description": "cotton"}
    assert form_type.startswith("multipart/form-data; boundary=")
    assert b'name="image"; filename="tee.jpg"' in form
    assert b"\xff\xd8photo" in form
    assert b'name="name"' in form
    assert b"Tee" in form


def test_closed_loop_counts_connection_errors():
    # Bind and close a socket to get a port on which nothing listens.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    limits = LoadLimits(warmup_s=0, duration_s=30.0, max_requests=3, request_timeout_s=5)

    result = asyncio.run(run_closed_loop(f"http://127.0.0.1:{port}", _post("/ok"), 1, limits))

    assert dict(result.errors) == {"ClientConnectorError": 3}


def test_open_loop_sends_rate_times_duration(counting_server):
    limits = LoadLimits(warmup_s=0, duration_s=1.0, request_timeout_s=10)

    result = asyncio.run(run_open_loop(_url(counting_server), _post("/ok"), 20.0, limits, max_in_flight=16))

    assert counting_server.received == 20
    assert result.succeeded == 20
    assert result.dropped == 0
    assert result.to_dict()["target_rate"] == 20.0


def test_open_loop_drops_sends_over_max_in_flight(counting_server):
    # 200 requests/s with 50 ms responses needs about 10 in flight, so a cap of 1 drops most sends.
    limits = LoadLimits(warmup_s=0, duration_s=0.5, request_timeout_s=10)

    result = asyncio.run(run_open_loop(_url(counting_server), _post("/ok"), 200.0, limits, max_in_flight=1))

    assert result.dropped > 0
    assert result.succeeded + result.dropped == 100
    assert counting_server.max_in_flight == 1


def test_load_generator_rejects_remote_host():
    limits = LoadLimits(warmup_s=0, duration_s=1.0)

    with pytest.raises(ValueError, match="127.0.0.1"):
        asyncio.run(run_closed_loop("http://192.0.2.1:8080", _post("/ok"), 1, limits))
