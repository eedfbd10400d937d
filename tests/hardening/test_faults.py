"""Faults on a private stack: a worker killed under load, then TorchServe stopped.

The tests run in file order on one module-scoped stack, because the last one stops
its TorchServe. The worker-kill measurement is benchmarks/faults.py, the same code
that produces the recovery time in docs/reliability.md.
"""

import asyncio

import httpx
import pytest

from benchmarks.faults import kill_under_load, model_worker
from benchmarks.inputs import Photo
from benchmarks.payloads import facade_classify
from tests.hardening.conftest import CLASSIFIER, PRICE_MODEL, private_stack, worker_pids

READ_TIMEOUT_S = 20
CONNECT_TIMEOUT_S = 1
RETRY_AFTER_S = 2
# A request still open after the facade's own timeouts plus this margin has hung.
HANG_MARGIN_S = 10

LOAD_CONCURRENCY = 4
LOAD_DURATION_S = 30
KILL_AFTER_S = 5


@pytest.fixture(scope="module")
def stack(model_store_dir, tmp_path_factory):
    facade_env = {
        "FPS_READ_TIMEOUT_S": str(READ_TIMEOUT_S),
        "FPS_CONNECT_TIMEOUT_S": str(CONNECT_TIMEOUT_S),
        "FPS_RETRY_AFTER_S": str(RETRY_AFTER_S),
    }
    with private_stack(model_store_dir, tmp_path_factory.mktemp("faults"), facade_env) as running:
        yield running


@pytest.fixture(scope="module")
def photos(sample_products) -> list[Photo]:
    return [Photo(product.article_id, group, product.photo.read_bytes()) for group, product in sample_products.items()]


def test_worker_kill_recovers_without_facade_restart(stack, photos):
    server = stack.torchserve
    worker = model_worker(server.launcher.pid, server.management_url, server.management_headers(), CLASSIFIER)
    facade_pid = stack.facade.process.pid

    result = asyncio.run(
        kill_under_load(
            stack.facade_url,
            facade_classify(photos),
            worker,
            server.management_url,
            server.management_headers(),
            CLASSIFIER,
            concurrency=LOAD_CONCURRENCY,
            duration_s=LOAD_DURATION_S,
            kill_after_s=KILL_AFTER_S,
            client_timeout_s=READ_TIMEOUT_S + CONNECT_TIMEOUT_S + HANG_MARGIN_S,
        )
    )

    assert result["failures_before_kill"] == 0, result
    # 504 comes from the facade's read timeout, for jobs that TorchServe dropped with
    # the killed worker and never responded to. Retry-After is checked on it as on the others.
    assert set(result["outcomes"]) <= {"HTTP 200", "HTTP 502", "HTTP 503", "HTTP 504"}, result["outcomes"]
    # A transport failure here is the client's own timeout: a request that hung.
    assert result["transport_failures"] == 0, result
    assert all(failure["retry_after"] == str(RETRY_AFTER_S) for failure in result["failed_requests"]), result
    assert result["recovery_s"] is not None, f"requests did not succeed again within the run: {result}"
    assert result["new_worker_ready_after_s"] is not None, result

    assert worker_pids(server, CLASSIFIER) != [worker.pid]
    assert stack.facade.process.poll() is None, "the facade exited"
    assert stack.facade.process.pid == facade_pid
    assert httpx.get(f"{stack.facade_url}/readyz", timeout=10).status_code == 200


def test_torchserve_stopped_gives_fast_503(stack, photos, product_fields):
    stack.torchserve.stop()
    photo = photos[0].data
    # The client waits a little longer than the facade's connect timeout, so a hang fails the request.
    client = httpx.Client(base_url=stack.facade_url, timeout=CONNECT_TIMEOUT_S + 5)

    readiness = client.get("/readyz")
    responses = {
        "classify": client.post("/v1/classify", files={"image": ("photo.jpg", photo, "image/jpeg")}),
        "price": client.post("/v1/price", json=product_fields),
        "predict": client.post("/v1/predict", files={"image": ("photo.jpg", photo, "image/jpeg")}, data=product_fields),
        "predict-with-group": client.post(
            "/v1/predict",
            files={"image": ("photo.jpg", photo, "image/jpeg")},
            data={**product_fields, "product_group": "Garment Upper body"},
        ),
    }
    health = client.get("/healthz")
    client.close()

    assert readiness.status_code == 503, readiness.text
    assert not readiness.json()["models"][CLASSIFIER]["ready"]
    assert not readiness.json()["models"][PRICE_MODEL]["ready"]
    for name, response in responses.items():
        assert response.status_code == 503, (name, response.text)
        assert response.headers.get("Retry-After") == str(RETRY_AFTER_S), name
        assert response.json()["error"] == "model_unavailable", name
    assert health.status_code == 200
