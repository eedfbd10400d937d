"""Property-based fuzzing of the facade's OpenAPI schema with schemathesis 4.

Schemathesis generates requests from the schema the running facade publishes at
/openapi.json, both valid ones and deliberately invalid ones, and sends them to the
facade in front of the session's TorchServe. No response may be a 5xx.

The operations are listed at collection time from the application object, because
the facade only runs once the session fixtures have started it. Each operation
gets a bounded number of examples in each generation mode.

NOTE: schemathesis 4.32.5's `schemathesis.pytest.from_fixture` reads
`request.node._nodeid`, which pytest 9.2 no longer has, so these tests drive the
documented `APIOperation.as_strategy` with hypothesis directly instead.
"""

import os

import hypothesis
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from frontend_api.app import create_app
from frontend_api.settings import Settings

# Examples per operation and mode; FPS_FUZZ_MAX_EXAMPLES raises it for a longer exploratory run.
MAX_EXAMPLES = int(os.environ.get("FPS_FUZZ_MAX_EXAMPLES", "20"))
# Generous, because one example may wait for a batch on a busy machine; this bounds a hang, not speed.
REQUEST_TIMEOUT_S = 30


def fuzz_cases() -> list[tuple[str, str, GenerationMode]]:
    """Return (method, path, mode) for every operation in the facade's OpenAPI schema.

    Negative (invalid) requests exist only for operations that take input, so the
    operations without a body or parameters get the positive mode alone.
    """
    paths = create_app(Settings()).openapi()["paths"]
    cases = []
    for path, methods in sorted(paths.items()):
        for method, operation in sorted(methods.items()):
            cases.append((method.upper(), path, GenerationMode.POSITIVE))
            if operation.get("requestBody") or operation.get("parameters"):
                cases.append((method.upper(), path, GenerationMode.NEGATIVE))
    return cases


@pytest.fixture(scope="module")
def facade_schema(facade):
    return schemathesis.openapi.from_url(f"{facade.base_url}/openapi.json")


@pytest.mark.parametrize(("method", "path", "mode"), fuzz_cases(), ids=lambda value: getattr(value, "value", value))
def test_fuzzed_requests_get_no_server_error(method, path, mode, facade_schema, facade):
    operation = facade_schema[path][method]
    responses = []

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def check(case):
        response = case.call(base_url=facade.base_url, timeout=REQUEST_TIMEOUT_S)
        responses.append(response.status_code)
        case.validate_response(response, checks=[not_a_server_error])
        assert "Traceback" not in response.text

    check()

    assert responses, f"schemathesis generated no request for {method} {path}"
