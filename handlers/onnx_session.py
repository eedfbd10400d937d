"""ONNX Runtime session creation with an explicit device and thread count.

With `device: cuda` the session must run on the CUDA execution provider. ONNX Runtime
falls back to the CPU without an error when CUDA is unavailable, so the session's
providers are checked and a missing CUDA provider raises instead of serving slowly.
"""

import logging
import os
from pathlib import Path

import onnxruntime as ort

logger = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda")


class DeviceUnavailableError(RuntimeError):
    """The configured execution provider is not available in this ONNX Runtime build or on this machine."""


def available_cpu_count() -> int:
    """Return the number of CPUs this process may run on (respects taskset and cpusets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # sched_getaffinity is Linux-only
        return os.cpu_count() or 1


def default_intra_op_threads(workers: int) -> int:
    """Split the available CPUs between the model's workers so that workers x threads <= CPUs."""
    return max(1, available_cpu_count() // max(1, workers))


def create_session(path: Path, device: str, intra_op_threads: int, gpu_id: int | None = None) -> ort.InferenceSession:
    """Create an inference session for `path` on `device` ("cpu" or "cuda").

    `intra_op_threads` sets the CPU thread pool size and must be >= 1. `gpu_id` selects
    the GPU for "cuda" (TorchServe assigns one per worker); None means GPU 0.
    Raises DeviceUnavailableError when "cuda" is requested but the session would not run on CUDA.
    """
    if device not in DEVICES:
        raise ValueError(f"Unknown device {device!r} in the handler config; use one of {', '.join(DEVICES)}.")
    if intra_op_threads < 1:
        raise ValueError(f"intra_op_threads must be >= 1, got {intra_op_threads}.")

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle pool threads spin for a while by default and burn CPU that the other
    # model's workers and the JVM need on a small machine.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")

    providers = _providers_for(device, gpu_id)
    session = ort.InferenceSession(str(path), sess_options=options, providers=providers)

    active = session.get_providers()
    if device == "cuda" and active[0] != "CUDAExecutionProvider":
        raise DeviceUnavailableError(
            f"The handler config sets device: cuda, but the ONNX Runtime session runs on {active}. "
            "Install onnxruntime-gpu with a CUDA version matching the driver, or set device: cpu."
        )
    logger.info("ONNX Runtime session for %s on %s with %d intra-op threads", path.name, active, intra_op_threads)
    return session


def _providers_for(device: str, gpu_id: int | None) -> list:
    if device == "cpu":
        return ["CPUExecutionProvider"]

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise DeviceUnavailableError(
            f"The handler config sets device: cuda, but this ONNX Runtime build offers only {available}. "
            "Install onnxruntime-gpu instead of onnxruntime, or set device: cpu."
        )
    # NOTE: this CUDA path has only run where CUDA is unavailable (the error branches);
    # no test has run it on a GPU with onnxruntime-gpu yet.
    cuda_options = {"device_id": gpu_id if gpu_id is not None else 0}
    return [("CUDAExecutionProvider", cuda_options), "CPUExecutionProvider"]
