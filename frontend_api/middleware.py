"""The facade's ASGI middleware: per-request bookkeeping, admission control and the early upload size check."""

import logging
import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from frontend_api.errors import Overloaded, PayloadTooLarge, error_response
from frontend_api.logs import REQUEST_ID, new_request_id
from frontend_api.metrics import Metrics

logger = logging.getLogger("frontend_api.access")

REQUEST_ID_HEADER = "X-Request-ID"


class RequestContextMiddleware:
    """Pure ASGI middleware around the whole application.

    For each HTTP request it takes the client's X-Request-ID or makes a new one. The id
    is visible to every log record and to the routes, and it is returned as a response
    header. The middleware counts and times the request per endpoint and writes one
    access log line with the status and the upstream timings that the route stored in
    `request.state.upstream_ms`. An exception that no handler caught becomes a JSON 500
    with the request id.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, retry_after_s: int):
        self.app = app
        self.metrics = metrics
        self.retry_after_s = retry_after_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = new_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        token = REQUEST_ID.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception as error:
            if response_started:
                raise
            response = error_response(error, self.retry_after_s)
            await response(scope, receive, send_with_request_id)
        finally:
            self._account(scope, status, time.perf_counter() - started)
            REQUEST_ID.reset(token)

    def _account(self, scope: Scope, status: int, seconds: float) -> None:
        endpoint = _endpoint_label(scope)
        method = scope["method"]
        self.metrics.observe_request(endpoint, method, status, seconds)

        upstream_ms = scope.get("state", {}).get("upstream_ms", {})
        logger.info(
            "%s %s %d",
            method,
            scope["path"],
            status,
            extra={"status": status, "duration_ms": round(seconds * 1000, 2), "upstream_ms": upstream_ms},
        )


def _endpoint_label(scope: Scope) -> str:
    """Return the matched route's path template, so metric labels stay few (never the raw path)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class ContentLengthLimitMiddleware:
    """Reject a request whose Content-Length exceeds the upload limit before reading any of its body.

    FastAPI's max_body_size also counts the bytes of bodies without Content-Length
    (chunked uploads) while they stream in, but it responds to a too-large Content-Length
    with a plain-text 413. This middleware handles that case with the facade's JSON
    error body instead.
    """

    def __init__(self, app: ASGIApp, max_upload_bytes: int, retry_after_s: int):
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.retry_after_s = retry_after_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = _content_length(scope) if scope["type"] == "http" else None
        if declared is None or declared <= self.max_upload_bytes:
            await self.app(scope, receive, send)
            return

        response = error_response(PayloadTooLarge(self.max_upload_bytes, declared), self.retry_after_s)
        await response(scope, receive, send)


class ConcurrencyLimitMiddleware:
    """Reject a /v1/ request with an immediate 503 when `max_in_flight` of them are already running.

    Without a cap, a burst far above capacity makes every request wait for the event
    loop and the connection pool until its timeouts fire, so a large burst got
    its 503s only after tens of seconds. Rejecting at admission, before the body is
    read, keeps the answer fast and leaves the admitted requests their full capacity.
    The counter needs no lock because all requests run on one event loop.
    """

    def __init__(self, app: ASGIApp, max_in_flight: int, retry_after_s: int):
        self.app = app
        self.max_in_flight = max_in_flight
        self.retry_after_s = retry_after_s
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return

        if self.in_flight >= self.max_in_flight:
            response = error_response(Overloaded(self.max_in_flight, self.retry_after_s), self.retry_after_s)
            await response(scope, receive, send)
            return

        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
