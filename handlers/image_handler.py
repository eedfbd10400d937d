"""TorchServe handler for the product-group classifier (fashion_classifier).

Each request carries one image, in one of three forms:
- the raw file bytes as the POST body (any image content type);
- a multipart form field named "image", "file" or "data" (or the form's only field);
- a JSON object {"image": "<base64>"} ("data" and "b64" are accepted too), where the
  base64 text may be a data URL such as "data:image/jpeg;base64,...".

A successful response is a JSON object:
    {"label": "Garment Upper body", "probability": 0.91,
     "top_k": [{"label": ..., "probability": ...}, ...],
     "model_name": "fashion_classifier", "model_version": "..."}
with `top_k` sorted by descending probability (length `handler.top_k`, default 3).
A request that fails gets a 4xx status and {"code", "type", "message"}.
"""

import base64
import binascii
import logging

import numpy as np

from handler_common import BatchHandler
from handler_errors import InvalidInputError
from image_decoding import DEFAULT_DRAFT_MIN_PIXELS, DEFAULT_MAX_IMAGE_PIXELS, decode_image
from image_preprocessing import ImagePreprocessor
from request_body import looks_like_json, parse_json, request_payload

logger = logging.getLogger(__name__)

FORM_FIELDS = ("image", "file")
JSON_IMAGE_KEYS = ("image", "data", "b64")
DEFAULT_TOP_K = 3

# Draft decoding keeps at least twice the model input size on each side, so the final
# antialiased resize still averages several source pixels per output pixel.
DRAFT_MARGIN = 2


class ImageClassifierHandler(BatchHandler):
    """Classifies product photos with one ONNX Runtime session; see the module docstring for the protocol."""

    task = "image-classification"

    def setup(self) -> None:
        """Read labels, preprocessing and limits, and check the session's input and output names."""
        self.labels = [str(label) for label in self.manifest["labels"]]
        self.preprocessor = ImagePreprocessor(self.manifest["preprocessing"])
        self.input_name = self.manifest["inputs"][0]["name"]
        self.output_name = self.manifest["outputs"][0]["name"]
        _check_names("input", self.input_name, [node.name for node in self.session.get_inputs()])
        _check_names("output", self.output_name, [node.name for node in self.session.get_outputs()])

        self.top_k = min(self.config_int("top_k", DEFAULT_TOP_K), len(self.labels))
        self.max_pixels = self.config_int("max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS)
        self.draft_min_pixels = self.config_int("draft_min_pixels", DEFAULT_DRAFT_MIN_PIXELS, minimum=0)
        draft_side = DRAFT_MARGIN * max(self.preprocessor.height, self.preprocessor.width)
        self.draft_size = (draft_side, draft_side)

    def decode_request(self, request: dict) -> np.ndarray:
        """Decode and preprocess the request's image into one model input array."""
        image = decode_image(
            image_bytes(request),
            max_pixels=self.max_pixels,
            draft_size=self.draft_size,
            draft_min_pixels=self.draft_min_pixels,
        )
        return self.preprocessor(image)

    def predict(self, items: list) -> list:
        """Classify all images with one session.run and return the top-k labels per image."""
        batch = np.stack(items)
        (probabilities,) = self.session.run([self.output_name], {self.input_name: batch})
        if probabilities.shape != (len(items), len(self.labels)):
            raise RuntimeError(
                f"The model returned {self.output_name} with shape {probabilities.shape}, "
                f"expected {(len(items), len(self.labels))}; the manifest's labels do not match the ONNX file."
            )
        return [self._top_k_body(row) for row in probabilities]

    def _top_k_body(self, probabilities: np.ndarray) -> dict:
        order = np.argsort(-probabilities, kind="stable")[: self.top_k]
        top_k = [{"label": self.labels[i], "probability": float(probabilities[i])} for i in order]
        return {
            "label": top_k[0]["label"],
            "probability": top_k[0]["probability"],
            "top_k": top_k,
            "model_name": self.model_name,
            "model_version": self.model_version,
        }


def image_bytes(request: dict) -> bytes:
    """Extract the image file bytes from a raw, multipart or JSON request; raise InvalidInputError otherwise."""
    payload = request_payload(request, preferred_keys=FORM_FIELDS)

    if isinstance(payload, (bytes, bytearray)):
        if not looks_like_json(payload):
            return bytes(payload)
        payload = parse_json(payload)
    elif isinstance(payload, str) and payload.lstrip().startswith("{"):
        payload = parse_json(payload)

    if isinstance(payload, dict):
        return _image_from_json(payload)
    if isinstance(payload, str):
        return decode_base64(payload)
    if isinstance(payload, list):
        raise InvalidInputError(
            "The request contains a JSON list; send one image per request. "
            "The server batches concurrent requests itself."
        )
    raise InvalidInputError(
        f"The request body is a JSON {type(payload).__name__}; send the image file bytes or {{\"image\": \"<base64>\"}}."
    )


def _image_from_json(payload: dict) -> bytes:
    for key in JSON_IMAGE_KEYS:
        if key in payload:
            value = payload[key]
            if not isinstance(value, str):
                raise InvalidInputError(f"The JSON field {key!r} must be a base64 string, got {type(value).__name__}.")
            return decode_base64(value)
    raise InvalidInputError(
        f"The JSON object has the keys {sorted(payload)}; send the base64-encoded image under \"image\"."
    )


def decode_base64(text: str) -> bytes:
    """Decode standard or URL-safe base64, with or without padding or a data URL prefix."""
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    compact = "".join(text.split())
    if not compact:
        raise InvalidInputError("The base64 image text is empty; send the encoded image file.")

    padded = compact + "=" * (-len(compact) % 4)
    altchars = b"-_" if ("-" in compact or "_" in compact) else None
    try:
        return base64.b64decode(padded, altchars=altchars, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidInputError(f"The image text is not valid base64 ({error}); encode the file with base64.") from error


def _check_names(kind: str, expected: str, actual: list[str]) -> None:
    if expected not in actual:
        raise ValueError(
            f"The manifest names the model {kind} {expected!r}, but the ONNX file has {actual}; "
            "re-export the model so that manifest and ONNX file match."
        )
