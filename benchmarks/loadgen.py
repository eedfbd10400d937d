"""HTTP load generator: closed-loop concurrency levels and an open-loop request rate.

Both modes follow Triton's perf_analyzer. A closed loop keeps N requests in flight,
so each client sends its next request when the previous response arrives. An open
loop sends at a fixed rate whatever the server does, so queueing shows up in the
latency.

Every level runs a warm-up whose results are discarded, then a measured window. A
level is bounded in time (warm-up + duration + one request timeout) and in count
(max_requests). Only http://127.0.0.1 URLs are accepted, because this tool must
never put load on another host.

The client is aiohttp because the load generator shares the 2 cores with the server it
measures. At concurrency 8 on /v1/price, httpx's AsyncClient spent 0.82 ms of CPU per
request here and aiohttp 0.20 ms, which the server gets back.
"""

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from benchmarks.stats import rate, summarize_latencies

logger = logging.getLogger(__name__)

ALLOWED_HOST = "127.0.0.1"


@dataclass(frozen=True)
class RequestSpec:
    """One HTTP request: a path relative to the base URL and one kind of body.

    `content` is sent as is, `json` as a JSON document, and `files` (name -> (file name,
    bytes, content type)) with `data` (name -> text) as multipart form data.
    """

    method: str
    path: str
    content: bytes | None = None
    json: Any = None
    files: dict | None = None
    data: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)


# Builds the i-th request of a level; cycling through real inputs by index keeps runs repeatable.
RequestFactory = Callable[[int], RequestSpec]

# Called between warm-up and the measured window, e.g. to mark the server's metrics log.
MeasureHook = Callable[[], None]


@dataclass(frozen=True)
class LoadLimits:
    """Time and count bounds of one level."""

    warmup_s: float = 2.0
    duration_s: float = 10.0
    max_requests: int = 20_000
    request_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.warmup_s < 0 or self.duration_s <= 0:
            raise ValueError(f"warm-up must be >= 0 s and duration > 0 s, got {self.warmup_s} s and {self.duration_s} s")
        if self.max_requests < 1:
            raise ValueError(f"max_requests must be at least 1, got {self.max_requests}")


@dataclass
class LevelResult:
    """Measured outcome of one level; latencies are of successful requests only."""

    mode: str  # "closed" or "open"
    concurrency: int | None
    target_rate: float | None
    elapsed_s: float
    latencies_s: list[float]
    errors: Counter
    dropped: int = 0  # open loop only: sends skipped because max_in_flight requests were pending

    @property
    def succeeded(self) -> int:
        return len(self.latencies_s)

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def to_dict(self) -> dict:
        """Return the JSON form used in the report: rates, latency summary and errors."""
        elapsed = max(self.elapsed_s, 1e-9)
        return {
            "mode": self.mode,
            "concurrency": self.concurrency,
            "target_rate": self.target_rate,
            "elapsed_s": self.elapsed_s,
            "requests": self.succeeded + self.failed,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "dropped": self.dropped,
            "errors": dict(sorted(self.errors.items())),
            "throughput_rps": rate(self.succeeded, elapsed),
            "latency": summarize_latencies(self.latencies_s),
        }


def check_loopback_url(base_url: str) -> None:
    """Raise ValueError unless base_url is an http URL on 127.0.0.1."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or parts.hostname != ALLOWED_HOST:
        raise ValueError(
            f"Rejected load target {base_url!r}: the load generator only sends to http://{ALLOWED_HOST}:PORT. "
            "Start the server on 127.0.0.1 and pass its URL."
        )


class _Recorder:
    """Collects outcomes of the requests that started inside the measured window."""

    def __init__(self) -> None:
        self.latencies_s: list[float] = []
        self.errors: Counter = Counter()
        self.last_finish = 0.0

    def record(self, latency_s: float, error: str | None, finished_at: float) -> None:
        if error is None:
            self.latencies_s.append(latency_s)
        else:
            self.errors[error] += 1
        self.last_finish = max(self.last_finish, finished_at)


def _body(spec: RequestSpec) -> bytes | aiohttp.FormData | None:
    """Return the body to send: raw bytes, or a new multipart form, since aiohttp sends a form only once."""
    if spec.files is None and spec.data is None:
        return spec.content
    form = aiohttp.FormData()
    for name, value in (spec.data or {}).items():
        form.add_field(name, value)
    for name, (filename, content, content_type) in (spec.files or {}).items():
        form.add_field(name, content, filename=filename, content_type=content_type)
    return form


async def _send(client: aiohttp.ClientSession, spec: RequestSpec) -> str | None:
    """Send one request; return None on a 2xx response, else an error key such as "HTTP 503"."""
    try:
        async with client.request(
            spec.method, spec.path, data=_body(spec), json=spec.json, headers=spec.headers or None
        ) as response:
            # Reading the whole body keeps the measured latency end to end and frees the connection.
            await response.read()
    except (aiohttp.ClientError, TimeoutError) as error:
        return type(error).__name__
    if response.ok:
        return None
    return f"HTTP {response.status}"


def _make_client(
    base_url: str, connections: int, limits: LoadLimits, headers: dict[str, str] | None
) -> aiohttp.ClientSession:
    check_loopback_url(base_url)
    return aiohttp.ClientSession(
        base_url=base_url,
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=limits.request_timeout_s),
        connector=aiohttp.TCPConnector(limit=connections),
        # Proxy variables from the environment must not reroute loopback traffic.
        trust_env=False,
    )


async def _closed_loop_phase(
    client: aiohttp.ClientSession, make_request: RequestFactory, concurrency: int, duration_s: float, max_requests: int
) -> tuple[_Recorder, float]:
    """Run `concurrency` clients back to back until the window closes; return outcomes and elapsed time."""
    recorder = _Recorder()
    started = time.perf_counter()
    deadline = started + duration_s
    issued = 0

    async def client_loop() -> None:
        nonlocal issued
        while time.perf_counter() < deadline and issued < max_requests:
            index = issued
            issued += 1
            sent_at = time.perf_counter()
            error = await _send(client, make_request(index))
            finished_at = time.perf_counter()
            recorder.record(finished_at - sent_at, error, finished_at)

    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    # Every request has finished here; last_finish is 0 only when none was sent.
    elapsed = (recorder.last_finish or time.perf_counter()) - started
    return recorder, elapsed


async def run_closed_loop(
    base_url: str,
    make_request: RequestFactory,
    concurrency: int,
    limits: LoadLimits,
    headers: dict[str, str] | None = None,
    on_measure_start: MeasureHook | None = None,
) -> LevelResult:
    """Measure one closed-loop level: warm up, then keep `concurrency` requests in flight for the window.

    Throughput is successful responses divided by the time from the window's start to
    the last response, so requests still in flight at the deadline are waited for and counted.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")

    async with _make_client(base_url, concurrency, limits, headers) as client:
        if limits.warmup_s > 0:
            await _closed_loop_phase(client, make_request, concurrency, limits.warmup_s, limits.max_requests)
        if on_measure_start is not None:
            on_measure_start()
        recorder, elapsed = await _closed_loop_phase(client, make_request, concurrency, limits.duration_s, limits.max_requests)

    result = LevelResult("closed", concurrency, None, elapsed, recorder.latencies_s, recorder.errors)
    logger.info(
        "closed loop c=%d: %d ok, %d failed in %.1f s", concurrency, result.succeeded, result.failed, elapsed
    )
    return result


async def _open_loop_phase(
    client: aiohttp.ClientSession,
    make_request: RequestFactory,
    rate_per_s: float,
    duration_s: float,
    max_requests: int,
    max_in_flight: int,
) -> tuple[_Recorder, float, int]:
    """Send at a constant rate for the window; return outcomes, elapsed time and dropped sends."""
    recorder = _Recorder()
    interval = 1.0 / rate_per_s
    count = min(max_requests, max(1, int(duration_s * rate_per_s)))
    in_flight: set[asyncio.Task] = set()
    dropped = 0
    started = time.perf_counter()

    async def timed_send(index: int, scheduled_at: float) -> None:
        error = await _send(client, make_request(index))
        finished_at = time.perf_counter()
        # Latency runs from the scheduled send time, so a late send (the client fell
        # behind) counts as server-side queueing instead of being hidden.
        recorder.record(finished_at - scheduled_at, error, finished_at)

    for index in range(count):
        scheduled_at = started + index * interval
        delay = scheduled_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(in_flight) >= max_in_flight:
            dropped += 1
            continue
        task = asyncio.create_task(timed_send(index, scheduled_at))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)

    if in_flight:
        await asyncio.gather(*in_flight)
    elapsed = max(recorder.last_finish, started + count * interval) - started
    return recorder, elapsed, dropped


async def run_open_loop(
    base_url: str,
    make_request: RequestFactory,
    rate_per_s: float,
    limits: LoadLimits,
    max_in_flight: int = 64,
    headers: dict[str, str] | None = None,
    on_measure_start: MeasureHook | None = None,
) -> LevelResult:
    """Measure one open-loop level: send `rate_per_s` requests per second for the window.

    At most `max_in_flight` requests are pending at once. A send that would exceed the
    cap is skipped and counted as dropped, so memory and connections stay bounded when
    the server falls behind.
    """
    if rate_per_s <= 0:
        raise ValueError(f"request rate must be positive, got {rate_per_s} requests/s")
    if max_in_flight < 1:
        raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")

    async with _make_client(base_url, max_in_flight, limits, headers) as client:
        if limits.warmup_s > 0:
            await _open_loop_phase(client, make_request, rate_per_s, limits.warmup_s, limits.max_requests, max_in_flight)
        if on_measure_start is not None:
            on_measure_start()
        recorder, elapsed, dropped = await _open_loop_phase(
            client, make_request, rate_per_s, limits.duration_s, limits.max_requests, max_in_flight
        )

    result = LevelResult("open", None, rate_per_s, elapsed, recorder.latencies_s, recorder.errors, dropped)
    logger.info(
        "open loop %.1f req/s: %d ok, %d failed, %d dropped in %.1f s",
        rate_per_s,
        result.succeeded,
        result.failed,
        dropped,
        elapsed,
    )
    return result
