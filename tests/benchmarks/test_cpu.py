"""benchmarks.cpu.CpuMeter on real processes: CPU ms per request by role."""

import subprocess
import sys
import time

import pytest

from benchmarks.cpu import LOAD_GENERATOR_ROLE, CpuMeter

# Busy-loops for about half a second of CPU time, then sleeps until the test stops it.
BURN = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end:\n    pass\ntime.sleep(60)\n"


@pytest.fixture
def busy_child():
    process = subprocess.Popen([sys.executable, "-c", BURN])
    yield process
    process.kill()
    process.wait(timeout=10)


def test_cpu_split_by_role(busy_child):
    meter = CpuMeter([busy_child.pid])
    meter.start()
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        pass
    time.sleep(1.0)

    cpu = meter.per_request_ms(10)

    assert cpu[LOAD_GENERATOR_ROLE] > 10  # about 300 ms of busy loop over 10 requests
    child_roles = set(cpu) - {LOAD_GENERATOR_ROLE}
    assert len(child_roles) == 1
    assert cpu[child_roles.pop()] > 10


def test_cpu_without_start_or_requests(busy_child):
    meter = CpuMeter([busy_child.pid])
    assert meter.per_request_ms(10) is None

    meter.start()
    assert meter.per_request_ms(0) is None
