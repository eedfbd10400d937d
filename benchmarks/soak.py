"""Soak test: steady load on the whole stack for minutes, reporting errors and memory growth.

    python -m benchmarks.soak --minutes 5                 # measure capacity, then soak at 80% of it
    python -m benchmarks.soak --minutes 5 --rate 20       # soak at a fixed rate instead
    python -m benchmarks.soak --minutes 1 --out results/soak.json

Steps: start TorchServe and the facade on 127.0.0.1 from --model-store, warm up,
measure capacity with a short closed loop (unless --rate is given), then send an open
loop at `load_fraction` x capacity for --minutes. The requests mix /v1/predict
(3 of 5), /v1/classify and /v1/price with real photos and article text. Every
`sample_interval` seconds the resident memory (RSS) of every stack process (launcher,
JVM, model workers, facade) is sampled. The report gives the errors by kind, the
latency summary, and the RSS growth from the first to the last sample, for the
stack and per process. The targets are zero errors and at most 5% RSS growth.
"""

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import payloads
from benchmarks.inputs import BenchInputs
from benchmarks.loadgen import LoadLimits, RequestFactory, RequestSpec, run_closed_loop, run_open_loop
from benchmarks.memory import stack_memory
from training.data import REPO_ROOT

logger = logging.getLogger(__name__)

DEFAULT_MODEL_STORE = REPO_ROOT / "model_store"
MAX_ERRORS = 0
MAX_RSS_GROWTH_PERCENT = 5.0
# Samples averaged at each end of the run, so one allocation spike does not decide the growth.
EDGE_SAMPLES = 3
# Closed-loop warm-up before a soak at a fixed --rate, so the first memory samples are
# taken after the models and the connection pools have warmed up.
WARMUP_SECONDS = 10.0


def mixed_requests(inputs: BenchInputs) -> RequestFactory:
    """Cycle through /v1/predict, /v1/predict, /v1/predict, /v1/classify, /v1/price by request index."""
    predict = payloads.facade_predict(inputs.stored_photos, inputs.text_rows)
    classify = payloads.facade_classify(inputs.stored_photos)
    price = payloads.facade_price(inputs.text_rows)
    cycle = (predict, predict, predict, classify, price)

    def make(index: int) -> RequestSpec:
        return cycle[index % len(cycle)](index)

    return make


def measure_capacity(facade_url: str, make_request: RequestFactory, concurrency: int, seconds: float, warmup_s: float = 2.0) -> dict:
    """Return the closed-loop result at `concurrency` after a warm-up; its throughput is the capacity."""
    limits = LoadLimits(warmup_s=warmup_s, duration_s=seconds)
    result = asyncio.run(run_closed_loop(facade_url, make_request, concurrency, limits))
    return result.to_dict()


async def _sample_memory(root_pids: list[int], interval_s: float, stop: asyncio.Event, started: float, samples: list[dict]) -> None:
    """Append a memory sample every `interval_s` until `stop` is set, and one more at the end."""
    while True:
        memory = await asyncio.to_thread(stack_memory, root_pids)
        samples.append({"t_s": round(time.perf_counter() - started, 1), **memory})
        if stop.is_set():
            return
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        except TimeoutError:
            pass


async def soak(facade_url: str, make_request: RequestFactory, rate: float, seconds: float, root_pids: list[int], interval_s: float) -> tuple[dict, list[dict]]:
    """Send the open loop for `seconds` while sampling memory; return the load result and the samples."""
    limits = LoadLimits(warmup_s=0.0, duration_s=seconds, max_requests=int(rate * seconds) + 1, request_timeout_s=60.0)
    samples: list[dict] = []
    stop = asyncio.Event()
    started = time.perf_counter()
    sampler = asyncio.create_task(_sample_memory(root_pids, interval_s, stop, started, samples))
    try:
        result = await run_open_loop(facade_url, make_request, rate, limits, max_in_flight=64)
    finally:
        stop.set()
        await sampler
    return result.to_dict(), samples


def memory_growth(samples: list[dict]) -> dict:
    """Summarize RSS growth between the mean of the first and of the last EDGE_SAMPLES samples."""
    if len(samples) < 2:
        raise ValueError(f"memory growth needs at least 2 samples, got {len(samples)}; run longer or sample more often")
    edge = min(EDGE_SAMPLES, len(samples) // 2)
    start = statistics.mean(sample["rss_total_bytes"] for sample in samples[:edge])
    end = statistics.mean(sample["rss_total_bytes"] for sample in samples[-edge:])

    per_role_start = _rss_by_role(samples[:edge])
    per_role_end = _rss_by_role(samples[-edge:])
    per_role = {
        role: {
            "start_bytes": round(per_role_start[role]),
            "end_bytes": round(per_role_end.get(role, 0)),
            "growth_percent": _percent(per_role_start[role], per_role_end.get(role, 0)),
        }
        for role in per_role_start
    }
    return {
        "start_rss_bytes": round(start),
        "end_rss_bytes": round(end),
        "max_rss_bytes": max(sample["rss_total_bytes"] for sample in samples),
        "growth_percent": _percent(start, end),
        "samples_averaged_per_end": edge,
        "per_role": per_role,
    }


def _rss_by_role(samples: list[dict]) -> dict[str, float]:
    """Return the mean RSS per process role over the samples; the workers of one role are summed per sample."""
    totals: dict[str, list[float]] = {}
    for sample in samples:
        per_sample: dict[str, float] = {}
        for process in sample["processes"]:
            per_sample[process["role"]] = per_sample.get(process["role"], 0) + process["rss_bytes"]
        for role, value in per_sample.items():
            totals.setdefault(role, []).append(value)
    return {role: statistics.mean(values) for role, values in totals.items()}


def _percent(start: float, end: float) -> float | None:
    return round((end - start) / start * 100, 2) if start else None


def evaluate(load: dict, growth: dict) -> dict:
    """Compare errors and RSS growth with the soak targets.

    Dropped sends (the load generator skipped a send because 64 requests were still
    open) are not errors of the service, but they mean the rate was above what the
    stack served at that moment, so they are listed next to the targets.
    """
    return {
        "dropped_sends": {"value": load["dropped"], "target": None, "met": None},
        "errors": {"value": load["failed"], "target": f"<= {MAX_ERRORS}", "met": load["failed"] <= MAX_ERRORS},
        "rss_growth_percent": {
            "value": growth["growth_percent"],
            "target": f"<= {MAX_RSS_GROWTH_PERCENT}",
            "met": growth["growth_percent"] is not None and growth["growth_percent"] <= MAX_RSS_GROWTH_PERCENT,
        },
    }


# --- Command line --------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the soak in minutes (default: %(default)s)")
    parser.add_argument("--rate", type=float, default=None, help="requests per second; without it, load_fraction x the measured capacity")
    parser.add_argument("--load-fraction", type=float, default=0.8, help="share of the measured capacity to send (default: %(default)s)")
    parser.add_argument("--capacity-seconds", type=float, default=20.0, help="length of the capacity measurement in seconds (default: %(default)s)")
    parser.add_argument("--capacity-concurrency", type=int, default=8, help="requests in flight during the capacity measurement (default: %(default)s)")
    parser.add_argument("--sample-interval", type=float, default=10.0, help="seconds between two memory samples (default: %(default)s)")
    parser.add_argument("--model-store", type=Path, default=DEFAULT_MODEL_STORE, help="folder with both .mar archives (default: %(default)s)")
    parser.add_argument("--data-root", default=None, help="data root with hm/ for photos and text (default: $FPS_DATA_ROOT, else the bundled sample)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON report to this file")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.sample_interval <= 0:
        parser.error("--minutes and --sample-interval must be positive")
    if args.rate is not None and args.rate <= 0:
        parser.error(f"--rate must be positive, got {args.rate}")
    if not 0 < args.load_fraction <= 1:
        parser.error(f"--load-fraction must be in (0, 1], got {args.load_fraction}")
    return args


def run(args: argparse.Namespace) -> dict:
    """Start the stack, measure capacity unless --rate is given, soak, stop the stack; return the report."""
    from benchmarks.inputs import load_inputs
    from benchmarks.stack import Facade, start_torchserve, stop_torchserve
    from frontend_api.archives import price_fields_from_archive

    inputs = load_inputs(args.data_root, photos_per_label=8, fullsize_limit=0, text_rows=200)
    make_request = mixed_requests(inputs)
    price_fields = list(price_fields_from_archive(args.model_store / "price_regressor.mar"))
    report: dict = {"inputs": inputs.describe(), "minutes": args.minutes}

    with tempfile.TemporaryDirectory(prefix="soak-") as work:
        server = start_torchserve(args.model_store, ("fashion_classifier", "price_regressor"), Path(work) / "torchserve")
        facade = None
        try:
            facade = Facade(server, price_fields, Path(work) / "facade.log")
            root_pids = [server.launcher.pid, facade.process.pid]

            if args.rate is None:
                capacity = measure_capacity(facade.url, make_request, args.capacity_concurrency, args.capacity_seconds)
                report["capacity"] = capacity
                rate = args.load_fraction * capacity["throughput_rps"]
                logger.info("capacity %.1f requests/s; soaking at %.1f requests/s", capacity["throughput_rps"], rate)
            else:
                rate = args.rate
                measure_capacity(facade.url, make_request, args.capacity_concurrency, WARMUP_SECONDS, warmup_s=0.0)
            report["rate_rps"] = round(rate, 2)

            load, samples = asyncio.run(soak(facade.url, make_request, rate, args.minutes * 60, root_pids, args.sample_interval))
        finally:
            if facade is not None:
                facade.stop()
            stop_torchserve(server)

    growth = memory_growth(samples)
    report.update(
        {
            "load": load,
            "memory": growth,
            "memory_samples": [{"t_s": sample["t_s"], "rss_total_bytes": sample["rss_total_bytes"]} for sample in samples],
            "targets": evaluate(load, growth),
        }
    )
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request at INFO, which would bury the few lines that matter.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0 if all(target["met"] is not False for target in report["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
