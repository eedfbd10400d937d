"""In-process inference timing: raw ONNX Runtime and PyTorch eager on preprocessed tensors.

These are the limits the served paths are compared against: no HTTP, no decoding and
no queueing, only the model on tensors that were preprocessed once up front.
"""

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from benchmarks.stats import summarize_latencies

logger = logging.getLogger(__name__)

# Runs one batch of NCHW float32 tensors through a model; the result is discarded.
BatchRunner = Callable[[np.ndarray], object]


def ort_session(onnx_path: Path, device: str = "cpu", intra_op_threads: int = 0) -> ort.InferenceSession:
    """Open an ONNX Runtime session on the CPU or CUDA execution provider.

    intra_op_threads 0 lets ONNX Runtime choose (one thread per physical core). On
    "cuda" the session must really run on CUDA: raises RuntimeError when ONNX Runtime
    fell back to the CPU, because a silent fallback would report CPU numbers as GPU numbers.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1

    if device == "cuda":
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    elif device == "cpu":
        providers = ["CPUExecutionProvider"]
    else:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")

    session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=providers)
    active = session.get_providers()
    if device == "cuda" and active[0] != "CUDAExecutionProvider":
        raise RuntimeError(
            f"ONNX Runtime did not enable CUDAExecutionProvider for {onnx_path} (active: {active}). "
            "Install onnxruntime-gpu with a CUDA version matching the driver."
        )
    return session


def ort_runner(session: ort.InferenceSession) -> BatchRunner:
    """Wrap a session as a BatchRunner on its first input and all outputs."""
    input_name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> object:
        return session.run(None, {input_name: batch})

    return run


def torch_runner(model: torch.nn.Module, device: str = "cpu", threads: int | None = None) -> BatchRunner:
    """Wrap an eval-mode PyTorch model as a BatchRunner; threads sets torch's intra-op thread count."""
    if threads is not None:
        torch.set_num_threads(threads)
    target = torch.device(device)
    model = model.to(target).eval()

    def run(batch: np.ndarray) -> object:
        with torch.inference_mode():
            output = model(torch.from_numpy(batch).to(target))
            # Copy the result back, as a server would, so CUDA's asynchronous launch is waited for.
            return output.cpu()

    return run


def make_batch(tensors: np.ndarray, batch_size: int, offset: int = 0) -> np.ndarray:
    """Take batch_size tensors from an [N,3,H,W] array, wrapping around, starting at offset."""
    count = tensors.shape[0]
    if count == 0:
        raise ValueError("no preprocessed tensors to batch; load at least one photo")
    indices = [(offset + i) % count for i in range(batch_size)]
    return np.ascontiguousarray(tensors[indices])


def measure_batch_size(
    run_batch: BatchRunner,
    tensors: np.ndarray,
    batch_size: int,
    *,
    warmup_runs: int = 2,
    duration_s: float = 5.0,
    max_runs: int = 1000,
) -> dict:
    """Time repeated runs of one batch size for about duration_s; returns images/s and per-call latency."""
    batches = [make_batch(tensors, batch_size, offset) for offset in range(0, max(tensors.shape[0], 1), batch_size)][:8]
    for index in range(warmup_runs):
        run_batch(batches[index % len(batches)])

    latencies: list[float] = []
    started = time.perf_counter()
    while len(latencies) < max_runs:
        call_started = time.perf_counter()
        run_batch(batches[len(latencies) % len(batches)])
        finished = time.perf_counter()
        latencies.append(finished - call_started)
        if finished - started >= duration_s:
            break
    elapsed = time.perf_counter() - started

    return {
        "batch_size": batch_size,
        "runs": len(latencies),
        "elapsed_s": elapsed,
        "images_per_s": batch_size * len(latencies) / elapsed,
        "latency": summarize_latencies(latencies),
    }


def sweep_batch_sizes(
    name: str,
    run_batch: BatchRunner,
    tensors: np.ndarray,
    batch_sizes: Sequence[int],
    *,
    duration_s: float = 5.0,
    warmup_runs: int = 2,
) -> dict:
    """Measure every batch size and name the one with the highest images/s."""
    rows = []
    for batch_size in batch_sizes:
        row = measure_batch_size(run_batch, tensors, batch_size, warmup_runs=warmup_runs, duration_s=duration_s)
        logger.info(
            "%s batch %d: %.1f images/s, p50 %.1f ms per call",
            name,
            batch_size,
            row["images_per_s"],
            row["latency"]["p50_ms"],
        )
        rows.append(row)

    best = max(rows, key=lambda row: row["images_per_s"])
    batch_one = next((row for row in rows if row["batch_size"] == 1), None)
    return {
        "name": name,
        "batches": rows,
        "best_batch_size": best["batch_size"],
        "best_images_per_s": best["images_per_s"],
        "batch1_p50_ms": batch_one["latency"]["p50_ms"] if batch_one else None,
    }
