"""Run a handler the way a TorchServe worker does, with TorchServe's own Context class.

`initialize_handler` mirrors the worker's model load (ts.model_loader): it builds a
ts.context.Context with the model folder and the parsed model-config.yaml and calls
`initialize`. `run_batch` mirrors ts.service.Service.predict: it sets one
RequestProcessor per request, calls `handle` and reads back each request's status.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import ts
from ts.context import Context, RequestProcessor
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

TS_METRICS_CONFIG = Path(ts.__file__).parent / "configs" / "metrics.yaml"


@dataclass
class ItemResult:
    """One request's response: HTTP status, content type and the decoded JSON body."""

    status: int
    content_type: str | None
    body: object


def make_context(model_name: str, model_dir: Path, model_config: dict) -> Context:
    """Build the Context a TorchServe 0.12 worker passes to a handler."""
    metrics = MetricsCacheYamlImpl(config_file_path=str(TS_METRICS_CONFIG))
    metrics.initialize_cache()
    metrics.model_name = model_name
    return Context(
        model_name,
        str(model_dir),
        manifest=None,
        batch_size=model_config.get("batchSize", 1),
        gpu=None,
        mms_version=ts.__version__,
        metrics=metrics,
        model_yaml_config=model_config,
    )


def initialize_handler(handler_class, model_name: str, model_dir: Path, model_config: dict):
    """Create and initialize a handler as a worker does; return (handler, context)."""
    context = make_context(model_name, model_dir, model_config)
    handler = handler_class()
    handler.initialize(context)
    return handler, context


def run_batch(handler, context: Context, requests: list[dict]) -> list[ItemResult]:
    """Call handle() on one batch and return each request's status, content type and JSON body."""
    context.request_processor = [RequestProcessor({}) for _ in requests]
    context.request_ids = {idx: f"request-{idx}" for idx in range(len(requests))}
    context.metrics.request_ids = context.request_ids

    responses = handler.handle(requests, context)

    assert len(responses) == len(requests), "the handler must answer every request exactly once"
    results = []
    for idx, response in enumerate(responses):
        status, _ = context.get_response_status(idx)
        results.append(ItemResult(status, context.get_response_content_type(idx), json.loads(response)))
    return results
