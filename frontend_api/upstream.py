"""The facade's client for TorchServe: one pooled aiohttp.ClientSession for all calls.

Every call sends the inference key as `Authorization: Bearer` and the request id as
`X-Request-ID`, is timed into the upstream metrics, and turns transport failures
and TorchServe error statuses into the facade's UpstreamError classes, which
errors.ERROR_TABLE maps to HTTP responses.

The client is aiohttp rather than httpx because this call is the facade's hot path.
Measured on the 2-core machine at concurrency 8 on /v1/price, httpx's AsyncClient cost
the facade 1.41 ms of CPU per request and aiohttp 0.64 ms. In py-spy samples the httpx
call took 59% of the facade's time, a quarter of that in its pool's per-request scan of
every open connection.
"""

import asyncio
import json
import logging
import time
from dataclasses import dataclass

import aiohttp

from frontend_api.errors import (
    ModelUnavailable,
    UpstreamError,
    UpstreamFailed,
    UpstreamRejected,
    UpstreamTimeout,
    WorkerFailed,
)
from frontend_api.metrics import Metrics
from frontend_api.schemas import Category, LabelProbability, ModelReadiness, Price
from frontend_api.settings import Settings

logger = logging.getLogger(__name__)

# TorchServe statuses that the handlers use for a bad item: the client's mistake, passed on as is.
CLIENT_ERROR_STATUSES = {400, 413, 415, 422}
# TorchServe responds with 503 when the model's job queue is full or it has no worker,
# and with 404 while the model is not registered (not loaded yet, or unregistered).
UNAVAILABLE_STATUSES = {404, 503, 507}
TIMEOUT_STATUSES = {408, 504}
# TorchServe 0.12 responds to a missing, wrong or expired key with 400 and this error
# type instead of 401, so the status alone would blame the client for the facade's key.
KEY_REJECTED_TYPE = "InvalidKeyException"


class ConnectionsBusy(Exception):
    """Every one of the FPS_MAX_CONNECTIONS connections to TorchServe stayed busy for FPS_CONNECT_TIMEOUT_S."""

    def __init__(self, max_connections: int, waited_s: float):
        super().__init__(
            f"all FPS_MAX_CONNECTIONS={max_connections} connections to TorchServe were busy for {waited_s} s"
        )


# Exceptions of a call that failed before TorchServe sent a status: aiohttp's errors, the
# plain TimeoutError that aiohttp raises for the total timeout, and the facade's ConnectionsBusy.
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, ConnectionsBusy)

_OUTCOME_BY_ERROR = {
    UpstreamRejected: "rejected",
    ModelUnavailable: "unavailable",
    UpstreamTimeout: "timeout",
    UpstreamFailed: "failed",
    WorkerFailed: "failed",
}


@dataclass(frozen=True)
class Classification:
    """The classifier's result for one photo and how long the call took."""

    category: Category
    model_version: str
    elapsed_ms: float


@dataclass(frozen=True)
class Pricing:
    """The price model's results, one per item in request order, and how long the call took."""

    prices: list[Price]
    elapsed_ms: float


@dataclass(frozen=True)
class Reply:
    """A TorchServe response, read in full: its status and its body."""

    status: int
    body: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> object:
        """Parse the body as JSON; raise ValueError when it is not JSON."""
        return json.loads(self.body)


class TorchServeClient:
    """Calls the two models on TorchServe's inference API and describes them on the management API."""

    def __init__(self, settings: Settings, metrics: Metrics):
        self._settings = settings
        self._metrics = metrics
        # `sock_read` bounds each wait for response bytes, so a slow model gets a 504. aiohttp
        # starts that clock only after the whole request is sent, so `total` also bounds a
        # TorchServe that stops reading a large upload.
        timeout = aiohttp.ClientTimeout(
            total=settings.connect_timeout_s + settings.read_timeout_s,
            sock_connect=settings.connect_timeout_s,
            sock_read=settings.read_timeout_s,
        )
        # The semaphore admits at most max_connections calls, so aiohttp's own pool never
        # makes a call wait. A call that cannot get a slot gets its own error, because
        # aiohttp reports a pool wait and a refused connection with the same timeout.
        self._slots = asyncio.Semaphore(settings.max_connections)
        connector = aiohttp.TCPConnector(limit=settings.max_connections)
        # trust_env=False: a proxy from HTTP_PROXY must never sit between the facade and TorchServe.
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False)

    @property
    def classifier_model(self) -> str:
        return self._settings.classifier_model

    @property
    def price_model(self) -> str:
        return self._settings.price_model

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._session.close()

    async def classify(self, image: bytes, request_id: str) -> Classification:
        """Send one photo to the classifier and return its top-k labels."""
        model = self._settings.classifier_model
        started = time.perf_counter()
        body = await self._predict(model, "classify", image, "application/octet-stream", request_id)
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2)

        category, version = parse_classification(body, model)
        return Classification(category=category, model_version=version, elapsed_ms=elapsed_ms)

    async def price(self, items: list[dict[str, str]], request_id: str) -> Pricing:
        """Send items to the price model in one request and return one price per item."""
        model = self._settings.price_model
        payload = json.dumps(items, ensure_ascii=False).encode("utf-8")
        started = time.perf_counter()
        body = await self._predict(model, "price", payload, "application/json", request_id)
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2)

        prices = parse_prices(body, len(items), model)
        return Pricing(prices=prices, elapsed_ms=elapsed_ms)

    async def describe(self, model: str, request_id: str) -> ModelReadiness:
        """Ask the management API for the model's workers; ready when one of them is READY.

        A transport error or an error status is returned as not ready with the reason, not raised.
        """
        url = f"{self._settings.torchserve_management_url}/models/{model}"
        headers = self._headers(self._settings.torchserve_management_key, request_id)
        started = time.perf_counter()
        try:
            response = await self._send("GET", url, headers)
        except TRANSPORT_ERRORS as error:
            self._metrics.observe_upstream(model, "describe", "unavailable", time.perf_counter() - started)
            return ModelReadiness(ready=False, detail=f"management API not reachable at {url}: {_describe_transport(error)}")
        self._metrics.observe_upstream(
            model, "describe", "ok" if response.is_success else "failed", time.perf_counter() - started
        )

        if response.status in (401, 403) or _error_type(response) == KEY_REJECTED_TYPE:
            return ModelReadiness(
                ready=False,
                detail=f"management API rejected the key ({response.status}); set FPS_TORCHSERVE_MANAGEMENT_KEY "
                "to the management key in TorchServe's key_file.json",
            )
        if not response.is_success:
            return ModelReadiness(ready=False, detail=f"management API returned {response.status}: {_short(response.text)}")
        try:
            description = response.json()
        except ValueError:
            return ModelReadiness(ready=False, detail=f"management API returned a body that is not JSON: {_short(response.text)}")
        return readiness_from_description(description)

    async def _predict(self, model: str, call: str, content: bytes, content_type: str, request_id: str) -> object:
        """POST to /predictions/{model} and return the parsed JSON body; raise an UpstreamError on failure."""
        url = f"{self._settings.torchserve_inference_url}/predictions/{model}"
        headers = self._headers(self._settings.torchserve_inference_key, request_id)
        headers["Content-Type"] = content_type
        started = time.perf_counter()
        try:
            response = await self._send("POST", url, headers, content)
            body = _check_response(response, model, call)
        except TRANSPORT_ERRORS as error:
            failure = _transport_error(error, model, call, url, self._settings.read_timeout_s)
            self._record_failure(failure, started)
            raise failure from error
        except UpstreamError as failure:
            self._record_failure(failure, started)
            raise

        self._metrics.observe_upstream(model, call, "ok", time.perf_counter() - started)
        return body

    async def _send(self, method: str, url: str, headers: dict[str, str], content: bytes | None = None) -> Reply:
        """Send one request and read the whole response body before the connection goes back to the pool."""
        await self._acquire_slot()
        try:
            async with self._session.request(method, url, data=content, headers=headers) as response:
                return Reply(status=response.status, body=await response.read())
        finally:
            self._slots.release()

    async def _acquire_slot(self) -> None:
        """Wait up to FPS_CONNECT_TIMEOUT_S for one of the FPS_MAX_CONNECTIONS connection slots."""
        waited_s = self._settings.connect_timeout_s
        try:
            async with asyncio.timeout(waited_s):
                await self._slots.acquire()
        except TimeoutError:
            raise ConnectionsBusy(self._settings.max_connections, waited_s) from None

    def _record_failure(self, failure: UpstreamError, started: float) -> None:
        outcome = _OUTCOME_BY_ERROR.get(type(failure), "failed")
        self._metrics.observe_upstream(failure.model, failure.call, outcome, time.perf_counter() - started)

    @staticmethod
    def _headers(key, request_id: str) -> dict[str, str]:
        headers = {"X-Request-ID": request_id}
        if key is not None:
            headers["Authorization"] = f"Bearer {key.get_secret_value()}"
        return headers


def _check_response(response: Reply, model: str, call: str) -> object:
    """Return the JSON body of a successful response; raise the UpstreamError that matches its status."""
    status = response.status
    if status == 200:
        try:
            return response.json()
        except ValueError as error:
            raise UpstreamFailed(
                f"TorchServe model '{model}' returned a body that is not JSON: {_short(response.text)}", model, call
            ) from error

    detail = _error_detail(response)
    if status in (401, 403) or _error_type(response) == KEY_REJECTED_TYPE:
        raise UpstreamFailed(
            f"TorchServe rejected the facade's inference key for model '{model}' ({status}); "
            "set FPS_TORCHSERVE_INFERENCE_KEY to the inference key in TorchServe's key_file.json.",
            model,
            call,
            status,
        )
    if status in CLIENT_ERROR_STATUSES:
        raise UpstreamRejected(f"Model '{model}' rejected the input: {detail}", model, call, status_code=status)
    if status in UNAVAILABLE_STATUSES:
        raise ModelUnavailable(
            f"Model '{model}' is unavailable on TorchServe ({status}: {detail}); retry later.", model, call, status
        )
    if status in TIMEOUT_STATUSES:
        raise UpstreamTimeout(f"Model '{model}' timed out on TorchServe ({status}: {detail}).", model, call, status)
    if status >= 500:
        raise WorkerFailed(
            f"Model '{model}' failed on TorchServe ({status}: {detail}); TorchServe restarts failed workers, "
            "so retry later.",
            model,
            call,
            status,
        )
    raise UpstreamFailed(f"Model '{model}' failed on TorchServe ({status}: {detail}).", model, call, status)


def _transport_error(error: Exception, model: str, call: str, url: str, read_timeout_s: float) -> UpstreamError:
    """Turn an aiohttp failure into the UpstreamError whose ERROR_TABLE entry fits it."""
    reason = _describe_transport(error)
    if isinstance(error, ConnectionsBusy):
        return ModelUnavailable(
            f"The facade could not call model '{model}': {error}. Retry later, or raise FPS_MAX_CONNECTIONS "
            "if TorchServe has spare capacity.",
            model,
            call,
        )
    if isinstance(error, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return ModelUnavailable(
            f"TorchServe is not reachable at {url} ({reason}); retry later or check that TorchServe is running.",
            model,
            call,
        )
    if isinstance(error, TimeoutError):
        return UpstreamTimeout(
            f"Model '{model}' sent no complete response within FPS_READ_TIMEOUT_S={read_timeout_s} s ({reason}).",
            model,
            call,
        )
    # The connection broke mid-request, which happens when TorchServe stops.
    return ModelUnavailable(f"The connection to TorchServe at {url} failed ({reason}); retry later.", model, call)


def _describe_transport(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _error_type(response: Reply) -> str | None:
    """Return the `type` of a TorchServe JSON error body, or None for any other body."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("type") if isinstance(body, dict) else None


def _error_detail(response: Reply) -> str:
    """Return the message of a TorchServe or handler error body, or the start of the raw body."""
    try:
        body = response.json()
    except ValueError:
        return _short(response.text)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return _short(response.text)


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def parse_classification(body: object, model: str) -> tuple[Category, str]:
    """Read the image handler's response for one photo into a Category and the model version."""
    try:
        top_k = [LabelProbability(label=item["label"], probability=item["probability"]) for item in body["top_k"]]
        version = str(body["model_version"])
    except (KeyError, TypeError) as error:
        raise UpstreamFailed(
            f"Model '{model}' returned an unexpected body ({error!r}): {_short(json.dumps(body))}", model, "classify"
        ) from error
    if not top_k:
        raise UpstreamFailed(f"Model '{model}' returned an empty top-k list.", model, "classify")

    best = top_k[0]
    return Category(label=best.label, confidence=best.probability, top_k=top_k), version


def parse_prices(body: object, expected_count: int, model: str) -> list[Price]:
    """Read the price handler's response, one price per item, into Price objects."""
    answers = body if isinstance(body, list) else [body]
    try:
        prices = [
            Price(value=item["price"], unit=item.get("unit"), currency=item.get("currency"), model_version=str(item["model_version"]))
            for item in answers
        ]
    except (KeyError, TypeError, ValueError) as error:
        raise UpstreamFailed(
            f"Model '{model}' returned an unexpected body ({error!r}): {_short(json.dumps(body))}", model, "price"
        ) from error
    if len(prices) != expected_count:
        raise UpstreamFailed(
            f"Model '{model}' returned {len(prices)} prices for {expected_count} items.", model, "price"
        )
    return prices


def readiness_from_description(description: object) -> ModelReadiness:
    """Read a management API model description; ready when any worker's status is READY."""
    try:
        workers = description[0]["workers"]
        statuses = [worker["status"] for worker in workers]
    except (KeyError, IndexError, TypeError):
        return ModelReadiness(ready=False, detail=f"unexpected description: {_short(json.dumps(description))}")

    if not statuses:
        return ModelReadiness(ready=False, detail="no workers")
    return ModelReadiness(ready="READY" in statuses, detail=", ".join(statuses))
