"""Reading /v1/predict and /v1/classify requests: a photo plus text, as multipart form data or JSON.

FastAPI cannot declare one route with two body formats, so these functions read the
body themselves and validate it with the pydantic models in schemas.py. Every
failure raises an exception from errors.py that names the field and the fix.
"""

import base64
import json
from typing import TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from frontend_api.errors import InvalidInput, MalformedRequest, UnsupportedMediaType, unreadable_json
from frontend_api.schemas import MAX_TEXT_CHARS, ClassifyJsonRequest, PredictJsonRequest, ProductText

IMAGE_FIELD = "image"
IMAGE_BASE64_FIELD = "image_base64"

ModelT = TypeVar("ModelT", bound=BaseModel)

# Both image routes parse up to this many text fields, one per product field. For
# /v1/classify this lets the error name an unexpected field instead of the parser failing.
MAX_FORM_FIELDS = len(ProductText.model_fields)

_MULTIPART = "multipart/form-data"
_JSON = "application/json"


async def read_predict_request(request: Request) -> tuple[bytes, ProductText]:
    """Return the photo bytes and the validated product text of a /v1/predict request."""
    media_type = _media_type(request)
    if media_type == _MULTIPART:
        form = await _read_form(request, max_fields=MAX_FORM_FIELDS)
        image = await _image_from_form(form)
        text = _validate(ProductText, _text_fields(form))
        return image, text

    if media_type == _JSON:
        payload = _validate(PredictJsonRequest, await _read_json_object(request))
        image = decode_base64_image(payload.image_base64)
        text = ProductText.model_validate(payload.model_dump(exclude={"image_base64"}))
        return image, text

    raise _unsupported(media_type)


async def read_classify_request(request: Request) -> bytes:
    """Return the photo bytes of a /v1/classify request."""
    media_type = _media_type(request)
    if media_type == _MULTIPART:
        form = await _read_form(request, max_fields=MAX_FORM_FIELDS)
        image = await _image_from_form(form)
        unknown = sorted(_text_fields(form))
        if unknown:
            raise InvalidInput(unknown[0], f"unknown field; /v1/classify takes only the file part '{IMAGE_FIELD}'")
        return image

    if media_type == _JSON:
        payload = _validate(ClassifyJsonRequest, await _read_json_object(request))
        return decode_base64_image(payload.image_base64)

    raise _unsupported(media_type)


def decode_base64_image(text: str) -> bytes:
    """Decode a base64 photo, accepting a `data:image/...;base64,` prefix and line breaks."""
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    compact = "".join(text.split())
    try:
        image = base64.b64decode(compact, validate=True)
    except ValueError as error:
        # binascii.Error (bad padding or alphabet) is a ValueError, and non-ASCII text raises a plain ValueError.
        raise InvalidInput(
            IMAGE_BASE64_FIELD, f"not valid base64 ({error}); encode the file with standard base64, e.g. `base64 -w0 photo.jpg`"
        ) from error

    if not image:
        raise InvalidInput(IMAGE_BASE64_FIELD, "decodes to zero bytes; send the base64 of a JPEG, PNG or WebP photo")
    return image


async def require_json(request: Request) -> None:
    """Reject a /v1/price request whose Content-Type is not JSON, before FastAPI parses the body.

    Without this check, curl's default form encoding reaches the body validator and
    gets a 422 stating that the body is not an object, which hides the real mistake.
    The dependency is async only so that FastAPI runs it on the event loop, because
    FastAPI sends a plain function to a worker thread on every request.
    """
    media_type = _media_type(request)
    if media_type != "application/json":
        received = media_type or "no Content-Type"
        raise UnsupportedMediaType(
            f"Unsupported Content-Type '{received}'. Send the product (a JSON object) or products "
            "(a JSON array) with 'Content-Type: application/json'."
        )


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _unsupported(media_type: str) -> UnsupportedMediaType:
    received = media_type or "no Content-Type"
    return UnsupportedMediaType(
        f"Unsupported Content-Type '{received}'. Send multipart/form-data with the photo as a file part named "
        f"'{IMAGE_FIELD}', or application/json with the photo in '{IMAGE_BASE64_FIELD}'."
    )


async def _read_form(request: Request, max_fields: int) -> FormData:
    """Parse a multipart body with the image and at most `max_fields` text fields.

    The parser counts a text field sent as a file part as a file. It accepts up to
    `max_fields + 1` files, so that the checks that follow can name the misplaced field.
    The route's max_body_size counts the bytes while the body streams in, so an
    oversized photo raises 413 before it is read completely.
    """
    try:
        # A UTF-8 character takes at most 4 bytes, so the longest allowed text fits one part.
        max_part_bytes = MAX_TEXT_CHARS * 4
        return await request.form(max_files=max_fields + 1, max_fields=max_fields, max_part_size=max_part_bytes)
    except StarletteHTTPException as error:
        if error.status_code != 400:
            raise
        raise MalformedRequest(
            f"Invalid multipart body: {error.detail} Send the photo as the file part '{IMAGE_FIELD}' "
            "and the text fields as plain form fields."
        ) from error


async def _image_from_form(form: FormData) -> bytes:
    parts = form.getlist(IMAGE_FIELD)
    if not parts:
        raise InvalidInput(IMAGE_FIELD, f"missing; attach the photo as a file part, e.g. curl -F {IMAGE_FIELD}=@photo.jpg")
    if len(parts) > 1:
        raise InvalidInput(IMAGE_FIELD, f"sent {len(parts)} times; attach exactly one photo")
    part = parts[0]
    if not isinstance(part, UploadFile):
        raise InvalidInput(
            IMAGE_FIELD, f"sent as a text field; attach the photo as a file part, e.g. curl -F {IMAGE_FIELD}=@photo.jpg"
        )

    image = await part.read()
    if not image:
        raise InvalidInput(IMAGE_FIELD, "the file is empty; attach the photo file itself")
    return image


def _text_fields(form: FormData) -> dict[str, object]:
    """Collect the form's text fields, rejecting repeated fields and files in text fields."""
    fields: dict[str, object] = {}
    for key in form.keys():
        if key == IMAGE_FIELD:
            continue
        values = form.getlist(key)
        if len(values) > 1:
            raise InvalidInput(key, f"sent {len(values)} times; send it once")
        if isinstance(values[0], UploadFile):
            raise InvalidInput(key, "sent as a file; send it as a plain text form field, e.g. curl -F name=Sweater")
        fields[key] = values[0]
    return fields


async def _read_json_object(request: Request) -> dict:
    body = await request.body()
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as error:
        raise MalformedRequest(
            f"The body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}."
        ) from error
    except (RecursionError, ValueError) as error:
        # UnicodeDecodeError is a ValueError too, so all three causes get their message there.
        raise unreadable_json(error) from error

    if not isinstance(payload, dict):
        raise InvalidInput("body", f"must be a JSON object, got {_json_type(payload)}")
    return payload


def _json_type(value: object) -> str:
    """Name a parsed JSON value by its JSON type, e.g. 'an array' or 'null'."""
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    if value is None:
        return "null"
    return names.get(type(value), type(value).__name__)


def _validate(model: type[ModelT], data: dict) -> ModelT:
    """Validate with a pydantic model; raise the same RequestValidationError FastAPI raises for JSON bodies."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise RequestValidationError(error.errors(include_url=False, include_input=False)) from error
