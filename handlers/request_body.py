"""Payload extraction from TorchServe request dicts.

TorchServe hands each request to the handler as a dict. A plain POST body arrives under
"body". Clients that follow TorchServe's default handlers may use "data" instead. Each
multipart form field arrives under its own field name. With the default `decode_input_request=true`, an application/json
body arrives already parsed and a text/* body as str; everything else is bytes. Setting
that option to false delivers JSON as bytes, which `parse_json` also accepts.
"""

import json

from handler_errors import InvalidInputError

BODY_KEYS = ("body", "data")


def request_payload(request: dict, preferred_keys: tuple[str, ...] = ()) -> object:
    """Return the one payload value of a request.

    Looks for `preferred_keys` first, then "body" and "data", then accepts a request
    with exactly one field whatever its name. Raises InvalidInputError naming the
    fields when the payload is missing or ambiguous.
    """
    if not request:
        raise InvalidInputError("The request is empty; send the input as the request body.")

    for key in (*preferred_keys, *BODY_KEYS):
        if key in request:
            return request[key]

    if len(request) == 1:
        return next(iter(request.values()))

    expected = ", ".join(repr(key) for key in (*preferred_keys, *BODY_KEYS))
    raise InvalidInputError(
        f"The request has the form fields {sorted(request)} and none of them is {expected}; "
        f"send the input in one of those fields."
    )


def parse_json(value: object) -> object:
    """Parse a JSON payload that arrives as bytes or str; pass through values TorchServe already parsed."""
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidInputError(f"The request body is not UTF-8 text ({error}); send JSON encoded as UTF-8.") from error

    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise InvalidInputError(f"The request body is not valid JSON: {error.msg} at position {error.pos}.") from error
        except (RecursionError, ValueError) as error:
            # Valid JSON that json.loads rejects: nesting thousands of levels deep
            # (RecursionError) or an integer longer than 4,300 digits (ValueError).
            raise InvalidInputError(
                "The request body is JSON that cannot be read: it is nested too deeply or contains a number "
                "that is too long. Send flat JSON with short numbers."
            ) from error

    return value


def looks_like_json(data: bytes) -> bool:
    """Return True when bytes start like a JSON object, which no supported image format does."""
    return data.lstrip()[:1] == b"{"
