"""The FastAPI application: routes, the TorchServe client's lifetime and the middleware."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Body, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from frontend_api import pipeline
from frontend_api.errors import InvalidInput, install_error_handlers
from frontend_api.inputs import (
    IMAGE_BASE64_FIELD,
    IMAGE_FIELD,
    read_classify_request,
    read_predict_request,
    require_json,
)
from frontend_api.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from frontend_api.metrics import Metrics
from frontend_api.middleware import ConcurrencyLimitMiddleware, ContentLengthLimitMiddleware, RequestContextMiddleware
from frontend_api.schemas import (
    ClassifyJsonRequest,
    ClassifyResponse,
    ErrorResponse,
    HealthResponse,
    PredictJsonRequest,
    PredictResponse,
    PriceRequest,
    PriceResponse,
    ProductText,
    ReadinessResponse,
    Timing,
)
from frontend_api.settings import Settings
from frontend_api.upstream import TorchServeClient

logger = logging.getLogger(__name__)

_ERROR_RESPONSES = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "Malformed body (broken JSON or multipart framing).",
        413: "Request body larger than FPS_MAX_UPLOAD_BYTES.",
        415: "Unsupported Content-Type.",
        422: "A field is missing or invalid, or the model rejected the input (e.g. a file that is not an image).",
        502: "TorchServe failed in a way that is not the client's fault.",
        503: "TorchServe is unreachable, has no worker or a full queue; the Retry-After header says when to retry.",
        504: "TorchServe did not answer within FPS_READ_TIMEOUT_S.",
    }.items()
}


def _image_request_body(text_model: type | None, json_model: type) -> dict:
    """OpenAPI requestBody for a route that takes a multipart photo or a JSON body with base64."""
    form_schema = {"type": "object", "properties": {}, "required": [IMAGE_FIELD]}
    if text_model is not None:
        form_schema = text_model.model_json_schema()
        form_schema["required"] = [*form_schema.get("required", []), IMAGE_FIELD]
    form_schema["properties"][IMAGE_FIELD] = {"type": "string", "format": "binary", "description": "The product photo."}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": form_schema},
                "application/json": {"schema": json_model.model_json_schema()},
            },
        }
    }


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the facade application; `settings` defaults to the FPS_ environment variables."""
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.client = TorchServeClient(settings, metrics)
        logger.info(
            "facade started",
            extra={
                "inference_url": settings.torchserve_inference_url,
                "classifier_model": settings.classifier_model,
                "price_model": settings.price_model,
                "price_fields": list(settings.price_fields),
            },
        )
        try:
            yield
        finally:
            await app.state.client.aclose()
            logger.info("facade stopped")

    app = FastAPI(
        title="Fashion Product Service",
        description="Product photo and text in; H&M product group and suggested price out.",
        version="1.0.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app, settings.retry_after_s, settings.max_upload_bytes)
    # The upload limit has two parts, and both respond with 413 and the JSON error body.
    # ContentLengthLimitMiddleware rejects a too-large Content-Length before any byte
    # of the body is read. Each POST route's max_body_size counts the bytes of a body
    # without Content-Length as they stream in. FastAPI's app-wide max_body_size is not
    # used, because it responds with plain text from outside the middleware.
    # The last middleware added runs first, so request bookkeeping wraps the admission
    # check, and the admission check runs before the size check reads anything.
    app.add_middleware(
        ContentLengthLimitMiddleware, max_upload_bytes=settings.max_upload_bytes, retry_after_s=settings.retry_after_s
    )
    app.add_middleware(
        ConcurrencyLimitMiddleware, max_in_flight=settings.max_concurrent_requests, retry_after_s=settings.retry_after_s
    )
    app.add_middleware(RequestContextMiddleware, metrics=metrics, retry_after_s=settings.retry_after_s)

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        responses=_ERROR_RESPONSES,
        openapi_extra=_image_request_body(ProductText, PredictJsonRequest),
        summary="Classify a product photo and suggest a price",
        max_body_size=settings.max_upload_bytes,
    )
    async def predict(request: Request) -> PredictResponse:
        """Take a photo and the product text; return the product group and a suggested price.

        Send multipart/form-data with the photo as the file part `image` and the text as
        form fields, or JSON with the photo as base64 in `image_base64`. Without
        `product_group` the classifier's label is passed to the price model.
        """
        image, text = await read_predict_request(request)
        pipeline.check_product_group(text, settings.product_groups)
        result = await pipeline.predict(
            request.app.state.client, settings.price_fields, image, text, request.state.request_id
        )
        _store_upstream_timing(request, result.timing)
        return result

    @app.post(
        "/v1/classify",
        response_model=ClassifyResponse,
        responses=_ERROR_RESPONSES,
        openapi_extra=_image_request_body(None, ClassifyJsonRequest),
        summary="Classify a product photo",
        max_body_size=settings.max_upload_bytes,
    )
    async def classify(request: Request) -> ClassifyResponse:
        """Take a photo (multipart file part `image`, or JSON `image_base64`); return the top-k product groups."""
        image = await read_classify_request(request)
        result = await pipeline.classify(request.app.state.client, image, request.state.request_id)
        _store_upstream_timing(request, result.timing)
        return result

    @app.post(
        "/v1/price",
        response_model=PriceResponse,
        responses=_ERROR_RESPONSES,
        summary="Suggest prices",
        max_body_size=settings.max_upload_bytes,
        dependencies=[Depends(require_json)],
    )
    async def price(request: Request, payload: Annotated[PriceRequest, Body()]) -> PriceResponse:
        """Take one product (a JSON object) or several (a JSON array); return one price per product, in order."""
        texts = payload if isinstance(payload, list) else [payload]
        for text in texts:
            pipeline.check_product_group(text, settings.product_groups)
        if not texts:
            raise InvalidInput("body", "the list is empty; send at least one product")
        if len(texts) > settings.max_price_items:
            raise InvalidInput(
                "body", f"{len(texts)} items exceed FPS_MAX_PRICE_ITEMS={settings.max_price_items}; split the list"
            )
        result = await pipeline.price(request.app.state.client, settings.price_fields, texts, request.state.request_id)
        _store_upstream_timing(request, result.timing)
        return result

    @app.get("/healthz", response_model=HealthResponse, summary="Liveness of the facade process")
    async def healthz() -> HealthResponse:
        """Return 200 while the process serves requests; does not call TorchServe."""
        return HealthResponse()

    @app.get(
        "/readyz",
        response_model=ReadinessResponse,
        responses={503: {"model": ReadinessResponse, "description": "At least one model has no READY worker."}},
        summary="Readiness of both models",
    )
    async def readyz(request: Request) -> JSONResponse:
        """Return 200 when both models have a READY worker on TorchServe, 503 otherwise."""
        client: TorchServeClient = request.app.state.client
        names = (settings.classifier_model, settings.price_model)
        states = await asyncio.gather(*(client.describe(name, request.state.request_id) for name in names))
        models = dict(zip(names, states))
        ready = all(state.ready for state in states)
        body = ReadinessResponse(status="ready" if ready else "not_ready", models=models)
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics_endpoint() -> Response:
        """Return request counts and latency histograms per endpoint and per TorchServe call."""
        return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)

    return app


def _store_upstream_timing(request: Request, timing: Timing) -> None:
    """Hand the upstream call durations to the access log line of this request."""
    request.state.upstream_ms = {
        name: value for name, value in (("classify", timing.classify_ms), ("price", timing.price_ms)) if value is not None
    }
