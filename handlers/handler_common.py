"""The batch loop shared by the image and price handlers.

TorchServe calls a handler with a list of requests that it collected into one batch.
`BatchHandler.handle` runs fixed stages over that list and returns exactly one
response per request, in request order:

1. decode: `decode_request` turns each request into a model-ready item. A RequestError
   gives that request its 4xx status; the other requests go on.
2. predict: `predict` runs the model once on all decoded items and returns one
   response body per item.
3. encode: each body becomes a JSON string with content type application/json.

Each batch records its preprocessing and inference time and its size as TorchServe
metrics (see METRIC_NAMES), so batching is visible on the metrics endpoint.
"""

import json
import logging
import time
from pathlib import Path

from ts.metrics.dimension import Dimension
from ts.metrics.metric_type_enum import MetricTypes

from handler_errors import RequestError, error_body
from model_manifest import load_manifest, onnx_path
from onnx_session import create_session, default_intra_op_threads

logger = logging.getLogger(__name__)

PREPROCESS_TIME_METRIC = "HandlerPreprocessTime"
INFERENCE_TIME_METRIC = "HandlerInferenceTime"
BATCH_SIZE_METRIC = "HandlerBatchSize"
METRIC_NAMES = (PREPROCESS_TIME_METRIC, INFERENCE_TIME_METRIC, BATCH_SIZE_METRIC)

JSON_CONTENT_TYPE = "application/json"


class BatchHandler:
    """Base class of the TorchServe handlers; subclasses set `task` and implement the hooks.

    Contract with TorchServe (the worker creates one instance per worker process):
    - `initialize(context)` runs once before any request. It reads manifest.json and the
      `handler:` section of model-config.yaml from the archive, verifies the ONNX file's
      hash and opens one ONNX Runtime session. It raises on any misconfiguration, which
      fails the worker start and shows the message in TorchServe's model log.
    - `handle(data, context)` runs once per batch. `data` is the list of request dicts
      and the return value is a list of the same length and order. Failed requests get
      a JSON error body and their own HTTP status through
      `context.set_response_status(code, phrase, idx)`.
    """

    task = ""

    def __init__(self):
        self.initialized = False

    # --- TorchServe entry points -----------------------------------------------------

    def initialize(self, context) -> None:
        """Load the manifest and open the ONNX Runtime session described by the archive's config."""
        model_dir = Path(context.system_properties["model_dir"])
        self.model_name = context.model_name
        model_config = context.model_yaml_config or {}
        self.config = model_config.get("handler") or {}

        self.manifest = load_manifest(model_dir, self.task)
        self.model_version = str(self.manifest["model_version"])

        threads = self.config_int("intra_op_threads", 0, minimum=0)
        if threads == 0:
            threads = default_intra_op_threads(int(model_config.get("maxWorkers", 1)))
        device = self.config.get("device", "cpu")
        self.session = create_session(
            onnx_path(model_dir, self.manifest), device, threads, gpu_id=context.system_properties.get("gpu_id")
        )

        self.setup()
        self.initialized = True
        logger.info("Initialized %s version %s from %s", self.model_name, self.model_version, model_dir)

    def handle(self, data: list, context) -> list:
        """Return one response per request of the batch; see the class docstring for the contract."""
        responses: list = [None] * len(data)
        logger.debug("%s received a batch of %d requests", self.model_name, len(data))

        started = time.perf_counter()
        items = {}
        for idx, request in enumerate(data):
            try:
                items[idx] = self.decode_request(request)
            except RequestError as error:
                responses[idx] = self._reject(context, idx, error)
            except Exception:  # noqa: BLE001 - one broken item must not fail the batch
                logger.exception("Decoding request %s of %s failed", context.get_request_id(idx), self.model_name)
                responses[idx] = self._fail(context, idx, "Decoding the request failed inside the handler.")
        decoded = time.perf_counter()

        if items:
            self._predict_items(items, responses, context)
        finished = time.perf_counter()

        self._record_metrics(context, len(data), decoded - started, finished - decoded)
        return responses

    # --- Hooks for subclasses --------------------------------------------------------

    def setup(self) -> None:
        """Check the session against the manifest and prepare what `decode_request` needs."""

    def decode_request(self, request: dict):
        """Turn one TorchServe request dict into a model-ready item or raise RequestError."""
        raise NotImplementedError

    def predict(self, items: list) -> list:
        """Run the model once on all items and return one JSON-ready response body per item."""
        raise NotImplementedError

    # --- Helpers ---------------------------------------------------------------------

    def config_int(self, key: str, default: int, minimum: int = 1) -> int:
        """Read an integer from the handler config; raise ValueError naming the key when invalid."""
        value = self.config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"handler.{key} in model-config.yaml must be an integer >= {minimum}, got {value!r}.")
        return value

    def _predict_items(self, items: dict, responses: list, context) -> None:
        try:
            outputs = self.predict(list(items.values()))
        except Exception:  # noqa: BLE001 - every request must still get an answer
            logger.exception("Inference failed for a batch of %d items of %s", len(items), self.model_name)
            for idx in items:
                responses[idx] = self._fail(context, idx, "Inference failed inside the model server.")
            return

        for idx, body in zip(items, outputs, strict=True):
            context.set_response_content_type(idx, JSON_CONTENT_TYPE)
            responses[idx] = json.dumps(body)

    def _reject(self, context, idx: int, error: RequestError) -> str:
        logger.info("Rejected request %s with %d: %s", context.get_request_id(idx), error.status_code, error.message)
        context.set_response_status(error.status_code, error.reason, idx)
        context.set_response_content_type(idx, JSON_CONTENT_TYPE)
        return json.dumps(error_body(error.status_code, type(error).__name__, error.message))

    def _fail(self, context, idx: int, message: str) -> str:
        context.set_response_status(500, "Internal Server Error", idx)
        context.set_response_content_type(idx, JSON_CONTENT_TYPE)
        return json.dumps(error_body(500, "InternalServerError", message))

    def _record_metrics(self, context, batch_size: int, preprocess_seconds: float, inference_seconds: float) -> None:
        metrics = context.metrics
        if metrics is None:
            return
        # Fresh dimension lists on every call, because TorchServe 0.12 appends default
        # dimensions to the list it receives (a shared mutable default otherwise).
        metrics.add_time(PREPROCESS_TIME_METRIC, preprocess_seconds * 1000, None, "ms", self._dimensions())
        metrics.add_time(INFERENCE_TIME_METRIC, inference_seconds * 1000, None, "ms", self._dimensions())
        metrics.add_metric(BATCH_SIZE_METRIC, batch_size, "count", None, self._dimensions(), MetricTypes.HISTOGRAM)

    def _dimensions(self) -> list:
        return [Dimension("ModelName", self.model_name), Dimension("Level", "Model")]
