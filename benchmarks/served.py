"""Load series against running servers: closed-loop levels, open-loop rates, full-size photos, the facade.

Each series is a list of levels measured with the load generator, each level with
the server-side split read from TorchServe's metrics over the same window.
"""

import asyncio
import logging
from pathlib import Path

from benchmarks import payloads
from benchmarks.cpu import CpuMeter
from benchmarks.inputs import BenchInputs
from benchmarks.loadgen import LoadLimits, RequestFactory, run_closed_loop, run_open_loop
from benchmarks.profiling import profile_during
from benchmarks.profiles import Profile
from benchmarks.stack import Endpoints
from benchmarks.targets import peak_throughput

logger = logging.getLogger(__name__)


def limits_for(profile: Profile) -> LoadLimits:
    """Return the per-level bounds of a profile."""
    return LoadLimits(
        warmup_s=profile.warmup_s,
        duration_s=profile.duration_s,
        max_requests=profile.max_requests_per_level,
        request_timeout_s=profile.request_timeout_s,
    )


def measure_closed_levels(
    base_url: str,
    make_request: RequestFactory,
    concurrency_levels: tuple[int, ...],
    limits: LoadLimits,
    headers: dict[str, str] | None,
    endpoints: Endpoints,
    metrics_model: str | None,
) -> list[dict]:
    """Measure each concurrency level in turn and attach the server-side split and CPU time of its window."""
    levels = []
    for concurrency in concurrency_levels:
        marks = {}
        cpu = CpuMeter(endpoints.root_pids)

        def mark() -> None:
            if endpoints.metrics is not None:
                marks["start"] = endpoints.metrics.mark()
            cpu.start()

        result = asyncio.run(run_closed_loop(base_url, make_request, concurrency, limits, headers, on_measure_start=mark))
        level = result.to_dict()
        level["server"] = _server_split(endpoints, marks, metrics_model, result.succeeded)
        level["cpu_ms_per_request"] = cpu.per_request_ms(result.succeeded)
        levels.append(level)
    return levels


def measure_open_levels(
    base_url: str,
    make_request: RequestFactory,
    rates: list[float],
    limits: LoadLimits,
    headers: dict[str, str] | None,
    endpoints: Endpoints,
    metrics_model: str | None,
) -> list[dict]:
    """Measure each request rate in turn; at most 4x the rate's requests per second are in flight."""
    levels = []
    for rate_per_s in rates:
        marks = {}

        def mark() -> None:
            if endpoints.metrics is not None:
                marks["start"] = endpoints.metrics.mark()

        # Enough room for 4 s of queueing at this rate, and never below 8.
        max_in_flight = max(8, int(rate_per_s * 4))
        result = asyncio.run(
            run_open_loop(base_url, make_request, rate_per_s, limits, max_in_flight, headers, on_measure_start=mark)
        )
        level = result.to_dict()
        level["server"] = _server_split(endpoints, marks, metrics_model, result.succeeded)
        levels.append(level)
    return levels


def _server_split(endpoints: Endpoints, marks: dict, model: str | None, requests: int) -> dict | None:
    if endpoints.metrics is None or model is None or "start" not in marks:
        return None
    return endpoints.metrics.summarize_since(marks["start"], model, requests)


def _series(description: str, target: str, path: str, input_kind: str, model: str | None, levels: list[dict]) -> dict:
    return {"description": description, "target": target, "path": path, "input": input_kind, "model": model, "levels": levels}


def torchserve_series(
    endpoints: Endpoints, inputs: BenchInputs, profile: Profile, model: str, name_prefix: str, description: str
) -> dict[str, dict]:
    """Measure one TorchServe image model directly: stored photos at every level, full-size photos at a few."""
    limits = limits_for(profile)
    series = {}
    path = f"/predictions/{model}"

    logger.info("measuring %s (stored photos)", name_prefix)
    levels = measure_closed_levels(
        endpoints.torchserve_url,
        payloads.torchserve_image(model, inputs.stored_photos),
        profile.concurrency,
        limits,
        endpoints.torchserve_headers,
        endpoints,
        model,
    )
    series[name_prefix] = _series(description, "torchserve", path, "stored", model, levels)

    if inputs.fullsize_photos and profile.fullsize_concurrency:
        logger.info("measuring %s (full-size photos)", name_prefix)
        levels = measure_closed_levels(
            endpoints.torchserve_url,
            payloads.torchserve_image(model, inputs.fullsize_photos),
            profile.fullsize_concurrency,
            limits,
            endpoints.torchserve_headers,
            endpoints,
            model,
        )
        series[f"{name_prefix}_fullsize"] = _series(description + ", full-size photos", "torchserve", path, "fullsize", model, levels)
    return series


def torchserve_price_series(endpoints: Endpoints, inputs: BenchInputs, profile: Profile) -> dict[str, dict]:
    """Measure the price model on TorchServe directly, so the report separates the facade's share of /v1/price."""
    if endpoints.price_fields is None:
        return {}
    model = endpoints.price_model
    logger.info("measuring %s on TorchServe directly", model)
    levels = measure_closed_levels(
        endpoints.torchserve_url,
        payloads.torchserve_price(model, inputs.text_rows, endpoints.price_fields),
        profile.price_concurrency,
        limits_for(profile),
        endpoints.torchserve_headers,
        endpoints,
        model,
    )
    description = "TorchServe, this project's price handler, one product per request"
    return {"torchserve_price": _series(description, "torchserve", f"/predictions/{model}", "text", model, levels)}


def open_loop_series(endpoints: Endpoints, inputs: BenchInputs, profile: Profile, closed: dict) -> dict[str, dict]:
    """Measure TorchServe at fixed request rates, as fractions of the closed-loop peak."""
    peak = peak_throughput(closed)
    if not peak or not profile.open_loop_fractions:
        return {}
    rates = [round(peak * fraction, 2) for fraction in profile.open_loop_fractions]
    logger.info("measuring open loop at %s requests/s", rates)
    model = endpoints.classifier_model
    levels = measure_open_levels(
        endpoints.torchserve_url,
        payloads.torchserve_image(model, inputs.stored_photos),
        rates,
        limits_for(profile),
        endpoints.torchserve_headers,
        endpoints,
        model,
    )
    description = "TorchServe, this project's ONNX handler, open loop at fractions of the closed-loop peak"
    return {"torchserve_onnx_open": _series(description, "torchserve", f"/predictions/{model}", "stored", model, levels)}


def facade_series(endpoints: Endpoints, inputs: BenchInputs, profile: Profile) -> dict[str, dict]:
    """Measure the facade's /v1/classify (stored and full-size photos), /v1/predict and /v1/price."""
    if endpoints.facade_url is None:
        return {}
    limits = limits_for(profile)
    url = endpoints.facade_url
    classifier = endpoints.classifier_model
    series = {}

    logger.info("measuring facade /v1/classify")
    levels = measure_closed_levels(url, payloads.facade_classify(inputs.stored_photos), profile.concurrency, limits, None, endpoints, classifier)
    series["facade_classify"] = _series("Facade /v1/classify", "facade", "/v1/classify", "stored", classifier, levels)

    if inputs.fullsize_photos and profile.fullsize_concurrency:
        logger.info("measuring facade /v1/classify (full-size photos)")
        levels = measure_closed_levels(
            url, payloads.facade_classify(inputs.fullsize_photos), profile.fullsize_concurrency, limits, None, endpoints, classifier
        )
        series["facade_classify_fullsize"] = _series(
            "Facade /v1/classify, full-size photos", "facade", "/v1/classify", "fullsize", classifier, levels
        )

    logger.info("measuring facade /v1/predict")
    levels = measure_closed_levels(
        url, payloads.facade_predict(inputs.stored_photos, inputs.text_rows), profile.concurrency, limits, None, endpoints, classifier
    )
    series["facade_predict"] = _series(
        "Facade /v1/predict without product_group (classify, then price)", "facade", "/v1/predict", "stored", classifier, levels
    )

    logger.info("measuring facade /v1/price")
    levels = measure_closed_levels(
        url, payloads.facade_price(inputs.text_rows), profile.price_concurrency, limits, None, endpoints, endpoints.price_model
    )
    series["facade_price"] = _series("Facade /v1/price, one product per request", "facade", "/v1/price", "text", endpoints.price_model, levels)
    return series


def served_series(endpoints: Endpoints, inputs: BenchInputs, profile: Profile) -> dict[str, dict]:
    """Measure everything that runs against this project's stack: TorchServe direct (both models), open loop, facade."""
    series = torchserve_series(
        endpoints,
        inputs,
        profile,
        endpoints.classifier_model,
        "torchserve_onnx",
        "TorchServe, this project's ONNX handler",
    )
    series.update(open_loop_series(endpoints, inputs, profile, series["torchserve_onnx"]))
    series.update(torchserve_price_series(endpoints, inputs, profile))
    series.update(facade_series(endpoints, inputs, profile))
    return series


def profiled_level(
    base_url: str,
    make_request: RequestFactory,
    headers: dict[str, str] | None,
    profile: Profile,
    targets: dict[str, int],
    out_dir: Path,
) -> dict:
    """Run one extra closed-loop level at the profile's concurrency while py-spy samples `targets` (name -> pid).

    The level is separate from the measured ones because sampling takes CPU time
    from the servers. It has no warm-up, since it follows measured levels on the same servers.
    """
    limits = LoadLimits(
        warmup_s=0,
        duration_s=profile.duration_s,
        max_requests=profile.max_requests_per_level,
        request_timeout_s=profile.request_timeout_s,
    )

    def run_load() -> None:
        asyncio.run(run_closed_loop(base_url, make_request, profile.profile_concurrency, limits, headers))

    return profile_during(targets, profile.duration_s, out_dir, run_load)
