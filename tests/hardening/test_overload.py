"""Overload on a private stack whose TorchServe queue has room for two requests per model.

A burst larger than the queue must get 503 with Retry-After, never a 500 or a hang,
and the stack must serve normally afterwards without any restart. The facade admits
at most MAX_IN_FLIGHT requests, so a burst also meets the facade's own admission
limit: the surplus there gets 503 "overloaded" before any body is read.
"""

import asyncio
from collections import Counter

import httpx
import pytest

from tests.hardening.conftest import CLASSIFIER, PRICE_MODEL, private_stack, worker_pids

JOB_QUEUE_SIZE = 2
RETRY_AFTER_S = 3
# At or below the facade's connection pool (64), so TorchServe's full queue, not the
# facade's pool, is what rejects the surplus.
BURST_SIZE = 48
# Below BURST_SIZE, so both rejections happen in one burst: the facade's admission
# limit and TorchServe's full queue behind the requests it admitted.
MAX_IN_FLIGHT = 24
CLIENT_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def stack(model_store_dir, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp("overload")
    with private_stack(
        model_store_dir, work_dir, {"FPS_RETRY_AFTER_S": str(RETRY_AFTER_S), "FPS_MAX_CONCURRENT_REQUESTS": str(MAX_IN_FLIGHT)}, job_queue_size=JOB_QUEUE_SIZE
    ) as running:
        yield running


@pytest.fixture(scope="module")
def pids_before(stack) -> dict[str, list[int]]:
    return {model: worker_pids(stack.torchserve, model) for model in (CLASSIFIER, PRICE_MODEL)}


async def burst(base_url: str, path: str, count: int, headers: dict | None = None, **body) -> list[httpx.Response | Exception]:
    """Send `count` identical requests at once; exceptions are returned, not raised."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=CLIENT_TIMEOUT_S, limits=limits) as client:
        return await asyncio.gather(*(client.post(path, **body) for _ in range(count)), return_exceptions=True)


def statuses(results) -> Counter:
    return Counter(result.status_code if isinstance(result, httpx.Response) else type(result).__name__ for result in results)


def test_burst_direct_to_torchserve_gets_503(stack, pids_before, photo_bytes):
    server = stack.torchserve

    results = asyncio.run(
        burst(server.inference_url, f"/predictions/{CLASSIFIER}", BURST_SIZE, server.inference_headers(), content=photo_bytes)
    )

    counts = statuses(results)
    assert set(counts) <= {200, 503}, counts
    assert counts[503] > 0, f"a burst of {BURST_SIZE} did not overflow a queue of {JOB_QUEUE_SIZE}: {counts}"
    assert counts[200] > 0, counts


@pytest.mark.parametrize("path", ["/v1/classify", "/v1/predict"])
def test_burst_through_facade_gets_503_with_retry_after(path, stack, pids_before, photo_bytes, product_fields):
    body = {"files": {"image": ("photo.jpg", photo_bytes, "image/jpeg")}}
    if path == "/v1/predict":
        body["data"] = product_fields

    results = asyncio.run(burst(stack.facade_url, path, BURST_SIZE, **body))

    counts = statuses(results)
    assert set(counts) <= {200, 503}, counts
    assert counts[503] > 0, f"a burst of {BURST_SIZE} did not overflow a queue of {JOB_QUEUE_SIZE}: {counts}"
    errors = Counter()
    for result in results:
        if result.status_code == 503:
            assert result.headers.get("Retry-After") == str(RETRY_AFTER_S)
            errors[result.json()["error"]] += 1
    assert set(errors) <= {"model_unavailable", "overloaded"}, errors


def test_stack_healthy_after_bursts(stack, pids_before, photo_bytes, product_fields):
    with httpx.Client(base_url=stack.facade_url, timeout=CLIENT_TIMEOUT_S) as client:
        readiness = client.get("/readyz")
        prediction = client.post("/v1/predict", files={"image": ("photo.jpg", photo_bytes, "image/jpeg")}, data=product_fields)

    assert readiness.status_code == 200, readiness.text
    assert prediction.status_code == 200, prediction.text
    for model, pids in pids_before.items():
        assert worker_pids(stack.torchserve, model) == pids, f"a worker of {model} was restarted"
    assert stack.facade.process.poll() is None
