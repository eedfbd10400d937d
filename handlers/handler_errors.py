"""Request errors that the handlers report per item, each with its HTTP status code.

A handler raises one of these while it decodes or validates a single request. The
batch loop in handler_common catches it, sets that request's status through
TorchServe's per-request response status and processes the other requests of the
batch normally. Any other exception is a server fault and gives the affected requests
a 500 response.
"""


class RequestError(Exception):
    """Base class for client errors in one request; the message names the problem and the fix."""

    status_code = 400
    reason = "Bad Request"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInputError(RequestError):
    """The request body is malformed or a value in it is invalid."""

    status_code = 400
    reason = "Bad Request"


class PayloadTooLargeError(RequestError):
    """The request fits the upload limit but is too large to process, such as an image with too many pixels."""

    status_code = 413
    reason = "Payload Too Large"


class UnsupportedMediaTypeError(RequestError):
    """The request contains data in a format that the handler does not decode."""

    status_code = 415
    reason = "Unsupported Media Type"


def error_body(status_code: int, error_type: str, message: str) -> dict:
    """Build the JSON body of a failed request's response."""
    return {"code": status_code, "type": error_type, "message": message}
