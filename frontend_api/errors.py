"""The facade's exceptions and the one table that maps each of them to an HTTP response.

Client mistakes become 4xx responses that name the field and the fix. TorchServe
being busy or down becomes 503 with Retry-After, a TorchServe timeout 504, and any
other TorchServe failure 502. Only a bug in the facade itself gives a 500.
"""

import logging
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from frontend_api.logs import REQUEST_ID
from frontend_api.schemas import PRICE_REQUEST_TAGS, ErrorResponse, FieldError

logger = logging.getLogger(__name__)


class FacadeError(Exception):
    """Base class of the errors the facade raises on purpose; the message is sent to the client."""

    def __init__(self, message: str, fields: list[FieldError] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or []


class MalformedRequest(FacadeError):
    """The body cannot be parsed at all (broken JSON, broken multipart framing)."""


class InvalidInput(FacadeError):
    """A field is missing, has the wrong type or an invalid value."""

    def __init__(self, field_name: str, problem: str):
        super().__init__(f"Invalid field '{field_name}': {problem}", [FieldError(field=field_name, message=problem)])


class UnsupportedMediaType(FacadeError):
    """The Content-Type is not one the endpoint accepts."""


class PayloadTooLarge(FacadeError):
    """The request body is larger than FPS_MAX_UPLOAD_BYTES."""

    def __init__(self, max_upload_bytes: int, declared_bytes: int | None = None):
        size = f" ({declared_bytes} bytes)" if declared_bytes is not None else ""
        super().__init__(
            f"The request body{size} is larger than FPS_MAX_UPLOAD_BYTES={max_upload_bytes} bytes; "
            "send a smaller photo (a JPEG at a lower resolution or quality) or fewer products per request."
        )


class Overloaded(FacadeError):
    """The facade already has FPS_MAX_CONCURRENT_REQUESTS model requests in flight."""

    def __init__(self, limit: int, retry_after_s: int):
        super().__init__(
            f"The service is at capacity ({limit} requests in flight, FPS_MAX_CONCURRENT_REQUESTS); "
            f"retry after {retry_after_s} s."
        )


class UpstreamError(FacadeError):
    """A call to a TorchServe model failed; `model` and `call` name which one."""

    def __init__(self, message: str, model: str, call: str, status_code: int | None = None):
        super().__init__(message)
        self.model = model
        self.call = call
        self.status_code = status_code


class UpstreamRejected(UpstreamError):
    """The model's handler rejected the input with a 4xx status, which the facade passes on."""


class ModelUnavailable(UpstreamError):
    """TorchServe is not reachable, has no worker for the model, or its queue is full."""


class UpstreamTimeout(UpstreamError):
    """TorchServe sent no response within FPS_READ_TIMEOUT_S."""


class UpstreamFailed(UpstreamError):
    """TorchServe responded with an error that is not the client's fault, or with an unreadable body."""


class WorkerFailed(UpstreamFailed):
    """TorchServe responded with a 5xx, typically because the model's worker died mid-batch.

    TorchServe starts a new worker on its own, so unlike a rejected key or an
    unreadable body the same request is likely to succeed a few seconds later.
    """


@dataclass(frozen=True)
class ErrorKind:
    """The HTTP response to one exception class. A status of None means the exception's own status code."""

    status: int | None
    code: str
    retry_after: bool = False
    log_level: int = logging.INFO


# The one table from exception to HTTP response. Lookup walks the exception's class
# hierarchy, so the most specific entry wins and `Exception` catches the rest.
ERROR_TABLE: dict[type[BaseException], ErrorKind] = {
    MalformedRequest: ErrorKind(400, "malformed_request"),
    InvalidInput: ErrorKind(422, "invalid_input"),
    RequestValidationError: ErrorKind(422, "invalid_input"),
    UnsupportedMediaType: ErrorKind(415, "unsupported_media_type"),
    PayloadTooLarge: ErrorKind(413, "payload_too_large"),
    Overloaded: ErrorKind(503, "overloaded", retry_after=True, log_level=logging.WARNING),
    UpstreamRejected: ErrorKind(None, "rejected_by_model"),
    ModelUnavailable: ErrorKind(503, "model_unavailable", retry_after=True, log_level=logging.WARNING),
    # TorchServe 0.12 can drop the jobs of a batch whose worker was killed without ever
    # sending a response; the facade's read timeout then ends them as 504, and Retry-After
    # tells the client that the replacement worker will likely serve a retry.
    UpstreamTimeout: ErrorKind(504, "upstream_timeout", retry_after=True, log_level=logging.WARNING),
    UpstreamFailed: ErrorKind(502, "upstream_failed", log_level=logging.ERROR),
    WorkerFailed: ErrorKind(502, "upstream_failed", retry_after=True, log_level=logging.ERROR),
    StarletteHTTPException: ErrorKind(None, "http_error"),
    Exception: ErrorKind(500, "internal_error", log_level=logging.ERROR),
}


def lookup_error_kind(error: BaseException) -> ErrorKind:
    """Return the table entry of the most specific class in the error's hierarchy."""
    for cls in type(error).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return ERROR_TABLE[Exception]


# FastAPI's detail for a JSON body that json.loads rejected with anything but a syntax error.
BODY_PARSE_DETAIL = "There was an error parsing the body"


def install_error_handlers(app: FastAPI, retry_after_s: int, max_upload_bytes: int) -> None:
    """Register one handler for every exception class in ERROR_TABLE."""

    async def handle(request: Request, error: Exception) -> JSONResponse:
        # FastAPI's body size limit raises a bare 413 "Content Too Large", which names neither the limit nor the fix.
        if isinstance(error, StarletteHTTPException) and error.status_code == 413:
            error = PayloadTooLarge(max_upload_bytes)
        # FastAPI reports a JSON body that does not parse as a validation error; it is a malformed body.
        if isinstance(error, RequestValidationError):
            error = _json_decode_error(error) or error
        # FastAPI turns every other failure to read a JSON body (not UTF-8, nested too
        # deeply, a number too long) into a bare 400 that names no cause.
        if isinstance(error, StarletteHTTPException) and error.detail == BODY_PARSE_DETAIL and error.__cause__:
            error = unreadable_json(error.__cause__)
        return error_response(error, retry_after_s)

    for cls in ERROR_TABLE:
        app.add_exception_handler(cls, handle)


def error_response(error: BaseException, retry_after_s: int) -> JSONResponse:
    """Build the JSON error response for an exception and log the error."""
    kind = lookup_error_kind(error)
    status = kind.status if kind.status is not None else getattr(error, "status_code", 500)
    message, fields = _describe(error)

    if kind.code == "internal_error":
        logger.exception("unhandled error", exc_info=error)
    else:
        logger.log(kind.log_level, "request failed: %s", message, extra={"status": status, "error": kind.code})

    body = ErrorResponse(error=kind.code, message=message, fields=fields, request_id=REQUEST_ID.get())
    headers = {"Retry-After": str(retry_after_s)} if kind.retry_after else None
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _describe(error: BaseException) -> tuple[str, list[FieldError]]:
    """Return the client-facing message and field errors of an exception."""
    if isinstance(error, FacadeError):
        return error.message, error.fields
    if isinstance(error, RequestValidationError):
        fields = [_field_error(item) for item in error.errors()]
        listed = "; ".join(f"'{item.field}': {item.message}" for item in fields)
        return f"Invalid request body: {listed}. Fix these fields and resend.", fields
    if isinstance(error, StarletteHTTPException):
        return str(error.detail), []
    return "Internal error in the facade; the request id in this response identifies it in the logs.", []


def unreadable_json(cause: BaseException) -> MalformedRequest:
    """Describe a body that json.loads rejected for a reason other than a syntax error."""
    if isinstance(cause, UnicodeDecodeError):
        return MalformedRequest(f"The body is not UTF-8 text ({cause.reason}); send JSON encoded as UTF-8.")
    # json.loads rejects valid JSON nested thousands of levels deep (RecursionError) and
    # integers longer than 4,300 digits (ValueError).
    return MalformedRequest(
        "The body is JSON that cannot be read: it is nested too deeply or contains a number that is too long. "
        "Send flat JSON with short numbers."
    )


def _json_decode_error(error: RequestValidationError) -> MalformedRequest | None:
    for item in error.errors():
        if item.get("type") == "json_invalid":
            reason = item.get("ctx", {}).get("error", "invalid JSON")
            position = item.get("loc", ("body", "?"))[-1]
            return MalformedRequest(f"The body is not valid JSON: {reason} at position {position}.")
    return None


# Fixes for the most common pydantic error types, appended to pydantic's message.
_FIXES = {
    "missing": "add this field",
    "extra_forbidden": "remove this field or fix its name; /docs lists the accepted fields",
    "string_type": "send the value as a string",
    "string_too_short": "send a non-empty value",
    "string_too_long": "shorten the text",
    "model_type": "send a JSON object with the product fields",
    "model_attributes_type": "send a JSON object with the product fields",
    "list_type": "send a JSON array of product objects",
}


def _field_error(item: dict) -> FieldError:
    """Turn one pydantic error into a field path such as `name` or `[0].name` and its message."""
    skipped = {"body", *PRICE_REQUEST_TAGS}
    location = [part for part in item.get("loc", ()) if part not in skipped]
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif path:
            path += f".{part}"
        else:
            path = str(part)
    message = item.get("msg", "invalid value")
    fix = _FIXES.get(item.get("type", ""))
    return FieldError(field=path or "body", message=f"{message} ({fix})" if fix else message)
