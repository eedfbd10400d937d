"""The facade's admission limit: requests past FPS_MAX_CONCURRENT_REQUESTS get an immediate 503."""

import asyncio

import httpx
from fastapi import FastAPI

from frontend_api.errors import install_error_handlers
from frontend_api.middleware import ConcurrencyLimitMiddleware

LIMIT = 3
RETRY_AFTER_S = 2


def blocking_app(release: asyncio.Event, entered: list[str]) -> FastAPI:
    """An app whose /v1/ route waits for `release`, so admitted requests stay in flight."""
    app = FastAPI()
    install_error_handlers(app, RETRY_AFTER_S, max_upload_bytes=1024 * 1024)
    app.add_middleware(ConcurrencyLimitMiddleware, max_in_flight=LIMIT, retry_after_s=RETRY_AFTER_S)

    @app.post("/v1/classify")
    async def classify() -> dict:
        entered.append("classify")
        await release.wait()
        return {"ok": True}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    return app


async def run_burst(count: int) -> tuple[list[httpx.Response], list[str], httpx.Response]:
    release = asyncio.Event()
    entered: list[str] = []
    app = blocking_app(release, entered)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://facade") as client:
        tasks = [asyncio.create_task(client.post("/v1/classify")) for _ in range(count)]
        # Let every request reach the middleware before the admitted ones may finish.
        while len(entered) < LIMIT or sum(task.done() for task in tasks) < count - LIMIT:
            await asyncio.sleep(0.01)
        health_during_burst = await client.get("/healthz")
        release.set()
        responses = await asyncio.gather(*tasks)
    return responses, entered, health_during_burst


def test_burst_past_limit_gets_503_overloaded():
    responses, entered, _ = asyncio.run(run_burst(LIMIT + 5))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * LIMIT + [503] * 5
    assert len(entered) == LIMIT


def test_overloaded_response_names_limit_and_retry():
    responses, _, _ = asyncio.run(run_burst(LIMIT + 1))

    rejected = [response for response in responses if response.status_code == 503]
    assert len(rejected) == 1
    assert rejected[0].headers["Retry-After"] == str(RETRY_AFTER_S)
    body = rejected[0].json()
    assert body["error"] == "overloaded"
    assert "FPS_MAX_CONCURRENT_REQUESTS" in body["message"]


def test_health_endpoints_not_counted():
    _, _, health = asyncio.run(run_burst(LIMIT + 2))

    assert health.status_code == 200
