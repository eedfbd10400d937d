"""CPU time per request of the load generator and of each process of the stack, over one measured window.

A level's latency on a shared machine depends on how much CPU every process spends on
one request. These numbers show where a request's CPU time goes: load generator,
facade, TorchServe's JVM or its workers. Processes are grouped by role (see
memory.process_role), because several workers share one role.
"""

import logging
import os
from collections import defaultdict
from collections.abc import Iterable

import psutil

from benchmarks.memory import process_role

logger = logging.getLogger(__name__)

LOAD_GENERATOR_ROLE = "load generator"


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


class CpuMeter:
    """CPU seconds per role, read at the start of a window and turned into ms per request at its end.

    The load generator is this process. Stack processes are the trees under `root_pids`,
    listed at `start()`, so a worker that TorchServe starts during the window is left out.
    """

    def __init__(self, root_pids: Iterable[int]):
        self.root_pids = list(root_pids)
        self._start: dict[int, tuple[str, float]] = {}

    def start(self) -> None:
        """Record the CPU seconds spent so far by every process of interest."""
        self._start = {}
        for process in self._processes():
            try:
                self._start[process.pid] = (self._role(process), _cpu_seconds(process))
            except psutil.NoSuchProcess:
                continue

    def per_request_ms(self, requests: int) -> dict[str, float] | None:
        """Return the CPU ms per request of each role since `start()`, or None before a start or without requests."""
        if not self._start or requests < 1:
            return None
        spent: dict[str, float] = defaultdict(float)
        for pid, (role, before) in self._start.items():
            try:
                spent[role] += _cpu_seconds(psutil.Process(pid)) - before
            except psutil.NoSuchProcess:
                logger.warning("process %d (%s) exited during the window; its CPU time is left out", pid, role)
        return {role: round(seconds * 1000 / requests, 3) for role, seconds in spent.items()}

    def _processes(self) -> list[psutil.Process]:
        processes = [psutil.Process(os.getpid())]
        for pid in self.root_pids:
            try:
                root = psutil.Process(pid)
                processes += [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                logger.warning("process %d not found; its CPU time is left out", pid)
        return processes

    @staticmethod
    def _role(process: psutil.Process) -> str:
        if process.pid == os.getpid():
            return LOAD_GENERATOR_ROLE
        return process_role(process.name(), " ".join(process.cmdline()))
