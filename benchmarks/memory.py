"""Resident memory of the serving stack, summed over process trees with psutil."""

import logging
from collections.abc import Iterable

import psutil

logger = logging.getLogger(__name__)


def _process_tree(pid: int) -> list[psutil.Process]:
    """Return the process and all its descendants; raises psutil.NoSuchProcess if pid is gone."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def process_role(name: str, cmdline: str) -> str:
    """Name a stack process by what it runs: the JVM frontend, a model worker, the launcher or the facade."""
    if name == "java" or "org.pytorch.serve" in cmdline:
        return "TorchServe frontend (JVM)"
    if "model_service_worker" in cmdline:
        return "TorchServe model worker"
    if "frontend_api" in cmdline:
        return "facade"
    if "torchserve" in cmdline:
        return "TorchServe launcher"
    return name


def _process_row(process: psutil.Process) -> dict | None:
    """Describe one process with its RSS and, where Linux exposes it, its PSS."""
    try:
        with process.oneshot():
            name = process.name()
            rss = process.memory_info().rss
            try:
                # PSS splits shared pages (the Python runtime, ONNX Runtime's library) between
                # the processes that map them, so the sum of PSS does not count them twice.
                pss = process.memory_full_info().pss
            except (psutil.AccessDenied, AttributeError):
                pss = None
            cmdline = " ".join(process.cmdline())[:160]
    except psutil.NoSuchProcess:
        # A worker can exit between listing and reading, and then it uses no memory.
        return None
    return {
        "pid": process.pid,
        "name": name,
        "role": process_role(name, cmdline),
        "cmdline": cmdline,
        "rss_bytes": rss,
        "pss_bytes": pss,
    }


def stack_memory(root_pids: Iterable[int]) -> dict:
    """Measure RSS and PSS of every process under the given root pids (JVM, workers, facade).

    RSS is the figure the targets use. It counts shared pages once per process, so it
    is an upper bound on the stack's footprint, while the PSS total is the fair share.
    """
    rows: list[dict] = []
    seen: set[int] = set()
    for pid in root_pids:
        try:
            tree = _process_tree(pid)
        except psutil.NoSuchProcess:
            logger.warning("process %d not found while measuring memory; it is left out of the total", pid)
            continue
        for process in tree:
            if process.pid in seen:
                continue
            seen.add(process.pid)
            row = _process_row(process)
            if row is not None:
                rows.append(row)

    pss_values = [row["pss_bytes"] for row in rows]
    return {
        "processes": rows,
        "rss_total_bytes": sum(row["rss_bytes"] for row in rows),
        "pss_total_bytes": sum(pss_values) if rows and None not in pss_values else None,
    }
