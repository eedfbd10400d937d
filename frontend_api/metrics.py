"""Prometheus metrics: request counts and latency per endpoint and per upstream call."""

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

# Seconds. Covers a few-millisecond price call up to a slow first ResNet50 batch.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class Metrics:
    """The facade's metrics in a registry of their own.

    A registry per application (not prometheus_client's global one) lets tests and
    the stack create several applications in one process without name clashes.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fps_http_requests_total",
            "HTTP requests handled by the facade, by endpoint, method and status code.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "fps_http_request_duration_seconds",
            "Time from receiving a request to sending the response, by endpoint.",
            ["endpoint", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_requests = Counter(
            "fps_upstream_requests_total",
            "Calls to TorchServe, by model, call and outcome (ok or the error kind).",
            ["model", "call", "outcome"],
            registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            "fps_upstream_request_duration_seconds",
            "Duration of calls to TorchServe, by model and call, including failed ones.",
            ["model", "call"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Count one HTTP request and record its duration."""
        self.requests.labels(endpoint, method, str(status)).inc()
        self.request_seconds.labels(endpoint, method).observe(seconds)

    def observe_upstream(self, model: str, call: str, outcome: str, seconds: float) -> None:
        """Count one TorchServe call and record its duration."""
        self.upstream_requests.labels(model, call, outcome).inc()
        self.upstream_seconds.labels(model, call).observe(seconds)

    def render(self) -> bytes:
        """Return all metrics in the Prometheus text format."""
        return generate_latest(self.registry)
