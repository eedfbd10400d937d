"""Logging with the current request id on every record, as text or JSON lines."""

import contextvars
import json
import logging
import re
import uuid

# Set by the request middleware for the duration of one request, so every log
# record written while handling it carries the id without passing it around.
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# A client-supplied X-Request-ID is kept only when it is short and printable, so
# it cannot inject log lines or headers.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
# uvicorn adds color_message, a copy of the message with terminal colour codes.
_STANDARD_RECORD_KEYS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id", "color_message"}


def new_request_id(client_value: str | None) -> str:
    """Return the client's X-Request-ID when it is valid, otherwise a new random id."""
    if client_value and _VALID_REQUEST_ID.match(client_value):
        return client_value
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Copy the current request id onto each record as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class TextFormatter(logging.Formatter):
    """One line per record: time, level, logger, request id, message, then the `extra=` fields as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extra_fields(record)
        if extras:
            line += " " + " ".join(f"{key}={json.dumps(value, default=str)}" for key, value in extras.items())
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the `extra=` fields as top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        entry.update(_extra_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _extra_fields(record: logging.LogRecord) -> dict:
    return {key: value for key, value in vars(record).items() if key not in _STANDARD_RECORD_KEYS}


def configure_logging(level: str, log_format: str) -> None:
    """Send the facade's and uvicorn's loggers to stderr in the chosen format.

    Only the `frontend_api` and `uvicorn` loggers are configured, so embedding the
    facade in another program (or pytest) leaves the root logger alone.
    """
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())

    for name in ("frontend_api", "uvicorn"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False

    # The middleware writes one access line per request with the request id, so
    # uvicorn's own access log would only repeat it.
    logging.getLogger("uvicorn.access").disabled = True
