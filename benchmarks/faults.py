"""Faults under load: SIGKILL a TorchServe model worker and time the recovery, or overload the facade with bursts.

    python -m benchmarks.faults kill                  # start TorchServe and the facade, kill once, print JSON
    python -m benchmarks.faults kill --concurrency 4 --duration 40 --kill-after 10 --out results/faults.json
    python -m benchmarks.faults burst --sizes 50,100,200,400

kill: a closed loop of `concurrency` clients sends /v1/classify requests to the
facade for `duration` seconds. After `kill_after` seconds the classifier's worker
process, found in the TorchServe launcher's process tree, gets SIGKILL. The report
lists how the requests ended, whether every 503 carried Retry-After, how long
TorchServe took to bring up a new READY worker, and the recovery time: from the kill
to the first successful response after the last failed one.

burst: sends each burst of simultaneous /v1/classify requests, then checks /readyz
and one more request, so the report shows how a burst larger than TorchServe's
queue ends and whether the service is healthy afterwards.

Every server runs on 127.0.0.1, and every load is bounded in time and count.
"""

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import psutil

from benchmarks.loadgen import RequestFactory, check_loopback_url
from training.data import REPO_ROOT

logger = logging.getLogger(__name__)

DEFAULT_MODEL_STORE = REPO_ROOT / "model_store"
WORKER_SCRIPT = "model_service_worker.py"
MAX_REQUESTS = 20_000
MAX_BURST_SIZE = 1000
# Seconds between two management API polls while waiting for the new worker.
READY_POLL_S = 0.25


class FaultError(RuntimeError):
    """The worker to kill was not found, or the measurement could not run."""


@dataclass(frozen=True)
class Outcome:
    """Outcome of one request; times are seconds since the load started."""

    sent_at: float
    finished_at: float
    status: int | None  # None when the request failed without an HTTP response
    error: str | None  # the exception name for a transport failure
    retry_after: str | None

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def latency_s(self) -> float:
        return self.finished_at - self.sent_at

    @property
    def kind(self) -> str:
        return f"HTTP {self.status}" if self.status is not None else str(self.error)


def worker_processes(launcher_pid: int) -> list[psutil.Process]:
    """Return the model worker processes in the process tree of a TorchServe launcher."""
    launcher = psutil.Process(launcher_pid)
    workers = []
    for process in launcher.children(recursive=True):
        try:
            if any(part.endswith(WORKER_SCRIPT) for part in process.cmdline()):
                workers.append(process)
        except psutil.NoSuchProcess:
            continue
    return workers


def model_worker(launcher_pid: int, management_url: str, headers: dict[str, str], model: str) -> psutil.Process:
    """Return the worker process that serves `model`.

    The management API names the worker pids of the model. The pid is used only when it
    is a worker in this launcher's process tree, so no other process can be hit.
    """
    described = describe_workers(management_url, headers, model)
    model_pids = {worker["pid"] for worker in described if worker.get("status") == "READY"}
    candidates = [process for process in worker_processes(launcher_pid) if process.pid in model_pids]
    if not candidates:
        raise FaultError(
            f"No READY worker of model {model!r} found under TorchServe launcher pid {launcher_pid} "
            f"(management API lists {described}); wait until the model is READY."
        )
    return candidates[0]


def describe_workers(management_url: str, headers: dict[str, str], model: str) -> list[dict]:
    """Return the `workers` list of GET /models/{model} on the management API."""
    check_loopback_url(management_url)
    response = httpx.get(f"{management_url}/models/{model}", headers=headers, timeout=5, trust_env=False)
    if response.status_code != 200:
        raise FaultError(f"Describing model {model!r} returned {response.status_code}: {response.text[:300]}")
    return response.json()[0].get("workers", [])


async def _wait_for_new_worker(
    management_url: str, headers: dict[str, str], model: str, old_pid: int, deadline: float, started: float
) -> float | None:
    """Poll the management API until a READY worker other than `old_pid` exists; return its time since `started`."""
    async with httpx.AsyncClient(headers=headers, timeout=2, trust_env=False) as client:
        while time.perf_counter() < deadline:
            try:
                response = await client.get(f"{management_url}/models/{model}")
                workers = response.json()[0].get("workers", []) if response.status_code == 200 else []
            except (httpx.HTTPError, ValueError, IndexError):
                workers = []
            if any(worker.get("status") == "READY" and worker.get("pid") != old_pid for worker in workers):
                return time.perf_counter() - started
            await asyncio.sleep(READY_POLL_S)
    return None


async def _send(client: httpx.AsyncClient, make_request: RequestFactory, index: int, started: float) -> Outcome:
    spec = make_request(index)
    sent_at = time.perf_counter() - started
    status = error = retry_after = None
    try:
        response = await client.request(
            spec.method, spec.path, content=spec.content, json=spec.json, files=spec.files, data=spec.data,
            headers=spec.headers or None,
        )  # fmt: skip
        status = response.status_code
        retry_after = response.headers.get("Retry-After")
    except httpx.HTTPError as exception:
        error = type(exception).__name__
    return Outcome(sent_at, time.perf_counter() - started, status, error, retry_after)


async def kill_under_load(
    base_url: str,
    make_request: RequestFactory,
    worker: psutil.Process,
    management_url: str,
    management_headers: dict[str, str],
    model: str,
    concurrency: int = 4,
    duration_s: float = 40.0,
    kill_after_s: float = 10.0,
    client_timeout_s: float = 60.0,
) -> dict:
    """Keep `concurrency` requests in flight, SIGKILL `worker` after `kill_after_s`, and summarize.

    `client_timeout_s` bounds each request on the client side; a request that reaches
    it ends as ReadTimeout and counts as hung in the summary.
    """
    check_loopback_url(base_url)
    if not 0 < kill_after_s < duration_s:
        raise ValueError(f"kill_after_s must be between 0 and duration_s ({duration_s} s), got {kill_after_s} s")

    outcomes: list[Outcome] = []
    issued = 0
    started = time.perf_counter()
    deadline = started + duration_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=base_url, timeout=client_timeout_s, limits=limits, trust_env=False) as client:

        async def client_loop() -> None:
            nonlocal issued
            while time.perf_counter() < deadline and issued < MAX_REQUESTS:
                index = issued
                issued += 1
                outcomes.append(await _send(client, make_request, index, started))

        async def kill_and_watch() -> tuple[float, float | None]:
            await asyncio.sleep(kill_after_s)
            killed_at = time.perf_counter() - started
            logger.info("sending SIGKILL to %s worker pid %d at %.1f s", model, worker.pid, killed_at)
            worker.kill()
            ready_at = await _wait_for_new_worker(
                management_url, management_headers, model, worker.pid, deadline + client_timeout_s, started
            )
            return killed_at, ready_at

        watcher = asyncio.create_task(kill_and_watch())
        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
        killed_at, ready_at = await watcher

    summary = summarize_recovery(outcomes, killed_at)
    summary.update(
        {
            "model": model,
            "killed_pid": worker.pid,
            "concurrency": concurrency,
            "duration_s": duration_s,
            "killed_at_s": round(killed_at, 3),
            "new_worker_ready_after_s": None if ready_at is None else round(ready_at - killed_at, 3),
            "client_timeout_s": client_timeout_s,
        }
    )
    return summary


def summarize_recovery(outcomes: list[Outcome], killed_at: float) -> dict:
    """Summarize the outcomes of a kill run.

    The recovery time runs from the kill to the first successful response that
    finished after the last failed one. When no request failed, it runs to the first
    success of a request sent after the kill. It is None when requests never
    succeeded again within the run.
    """
    failures = [outcome for outcome in outcomes if not outcome.succeeded]
    after_kill = [outcome for outcome in outcomes if outcome.finished_at >= killed_at]
    last_failure = max((outcome.finished_at for outcome in failures if outcome.finished_at >= killed_at), default=None)

    if last_failure is None:
        recovered = [outcome.finished_at for outcome in after_kill if outcome.succeeded and outcome.sent_at >= killed_at]
    else:
        recovered = [outcome.finished_at for outcome in after_kill if outcome.succeeded and outcome.finished_at >= last_failure]
    recovery_s = min(recovered) - killed_at if recovered else None

    unavailable = [outcome for outcome in failures if outcome.status == 503]
    return {
        "requests": len(outcomes),
        "succeeded": len(outcomes) - len(failures),
        "failed": len(failures),
        "outcomes": dict(sorted(Counter(outcome.kind for outcome in outcomes).items())),
        "failures_before_kill": sum(1 for outcome in failures if outcome.finished_at < killed_at),
        "unavailable_without_retry_after": sum(1 for outcome in unavailable if outcome.retry_after is None),
        "transport_failures": sum(1 for outcome in failures if outcome.status is None),
        "max_latency_s": round(max((outcome.latency_s for outcome in outcomes), default=0.0), 3),
        "recovery_s": None if recovery_s is None else round(recovery_s, 3),
        "failed_requests": [asdict(outcome) for outcome in failures[:50]],
    }


async def burst(base_url: str, make_request: RequestFactory, size: int, client_timeout_s: float = 60.0) -> dict:
    """Send `size` requests at once on `size` connections and summarize how they ended."""
    check_loopback_url(base_url)
    if not 1 <= size <= MAX_BURST_SIZE:
        raise ValueError(f"burst size must be between 1 and {MAX_BURST_SIZE}, got {size}")
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=client_timeout_s, limits=limits, trust_env=False) as client:
        outcomes = await asyncio.gather(*(_send(client, make_request, index, started) for index in range(size)))

    unavailable = [outcome for outcome in outcomes if outcome.status == 503]
    return {
        "size": size,
        "outcomes": dict(sorted(Counter(outcome.kind for outcome in outcomes).items())),
        "unavailable_without_retry_after": sum(1 for outcome in unavailable if outcome.retry_after is None),
        "max_latency_s": round(max(outcome.latency_s for outcome in outcomes), 3),
        "elapsed_s": round(max(outcome.finished_at for outcome in outcomes), 3),
    }


def check_health(base_url: str, make_request: RequestFactory) -> dict:
    """Return the /readyz status and the status of one request, sent after a fault."""
    spec = make_request(0)
    with httpx.Client(base_url=base_url, timeout=60, trust_env=False) as client:
        readiness = client.get("/readyz")
        response = client.request(spec.method, spec.path, content=spec.content, json=spec.json, files=spec.files, data=spec.data)
    return {"readyz": readiness.status_code, "request": response.status_code}


# --- Command line --------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model-store", type=Path, default=DEFAULT_MODEL_STORE, help="folder with both .mar archives (default: %(default)s)")
    common.add_argument("--data-root", default=None, help="data root with hm/ for the photos (default: $FPS_DATA_ROOT, else the bundled sample)")
    common.add_argument("--client-timeout", type=float, default=60.0, help="client-side timeout per request in seconds (default: %(default)s)")
    common.add_argument("--out", type=Path, default=None, help="also write the JSON result to this file")

    kill = commands.add_parser("kill", parents=[common], help="SIGKILL a model worker under load and time the recovery")
    kill.add_argument("--model", default="fashion_classifier", help="TorchServe model whose worker is killed (default: %(default)s)")
    kill.add_argument("--concurrency", type=int, default=4, help="requests kept in flight (default: %(default)s)")
    kill.add_argument("--duration", type=float, default=40.0, help="seconds of load in total (default: %(default)s)")
    kill.add_argument("--kill-after", type=float, default=10.0, help="seconds of load before the SIGKILL (default: %(default)s)")

    bursts = commands.add_parser("burst", parents=[common], help="send bursts of simultaneous /v1/classify requests")
    bursts.add_argument("--sizes", default="50,100,200,400", help="comma-separated burst sizes, sent one after another (default: %(default)s)")
    bursts.add_argument("--pause", type=float, default=5.0, help="seconds between two bursts (default: %(default)s)")
    return parser.parse_args(argv)


def run_kill(args: argparse.Namespace, server, facade_url: str, make_request: RequestFactory) -> dict:
    headers = server.management_headers()
    worker = model_worker(server.launcher.pid, server.management_url, headers, args.model)
    result = asyncio.run(
        kill_under_load(
            facade_url, make_request, worker, server.management_url, headers,
            args.model, args.concurrency, args.duration, args.kill_after, args.client_timeout,
        )
    )  # fmt: skip
    result["after"] = check_health(facade_url, make_request)
    return result


def run_bursts(args: argparse.Namespace, server, facade_url: str, make_request: RequestFactory) -> dict:
    try:
        sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    except ValueError as error:
        raise SystemExit(f"--sizes must be comma-separated integers, got {args.sizes!r}") from error

    results = []
    for size in sizes:
        result = asyncio.run(burst(facade_url, make_request, size, args.client_timeout))
        result["after"] = check_health(facade_url, make_request)
        logger.info("burst of %d: %s, afterwards %s", size, result["outcomes"], result["after"])
        results.append(result)
        time.sleep(args.pause)
    return {"job_queue_size": server.config.job_queue_size, "bursts": results}


def main(argv: list[str] | None = None) -> int:
    """Start TorchServe and the facade, run the chosen fault, print the JSON summary."""
    from benchmarks.inputs import load_inputs
    from benchmarks.payloads import facade_classify
    from benchmarks.stack import Facade, start_torchserve, stop_torchserve
    from frontend_api.archives import price_fields_from_archive

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request at INFO, which would bury the few lines that matter.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    inputs = load_inputs(args.data_root, photos_per_label=4, fullsize_limit=0, text_rows=1)
    make_request = facade_classify(inputs.stored_photos)
    price_fields = list(price_fields_from_archive(args.model_store / "price_regressor.mar"))

    with tempfile.TemporaryDirectory(prefix="faults-") as work:
        server = start_torchserve(args.model_store, ("fashion_classifier", "price_regressor"), Path(work) / "torchserve")
        facade = None
        try:
            facade = Facade(server, price_fields, Path(work) / "facade.log")
            runner = run_kill if args.command == "kill" else run_bursts
            result = runner(args, server, facade.url, make_request)
        finally:
            if facade is not None:
                facade.stop()
            stop_torchserve(server)

    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
