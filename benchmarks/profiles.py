"""Run profiles: which levels, batch sizes and handler settings a benchmark run measures, and for how long."""

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class HandlerSettings:
    """One TorchServe configuration of this project's classifier handler."""

    batch_size: int
    max_batch_delay_ms: int
    workers: int
    threads: int  # ONNX Runtime intra-op threads per worker

    def overrides(self) -> dict:
        """Return the model-config.yaml overrides for model_store.archive.build_archive."""
        return {
            "batchSize": self.batch_size,
            "maxBatchDelay": self.max_batch_delay_ms,
            "minWorkers": self.workers,
            "maxWorkers": self.workers,
            "handler": {"intra_op_threads": self.threads},
        }

    def to_dict(self) -> dict:
        """Return the JSON form used in the report."""
        return {
            "batch_size": self.batch_size,
            "max_batch_delay_ms": self.max_batch_delay_ms,
            "workers": self.workers,
            "threads": self.threads,
        }



def handler_sweep(base: HandlerSettings, batch_sizes, delays_ms, worker_thread_pairs) -> list[HandlerSettings]:
    """Vary one setting at a time around `base`: batch sizes, then delays, then workers x threads.

    One-at-a-time keeps the sweep to a handful of TorchServe restarts instead of the
    full product; a configuration that appears twice is measured once.
    """
    configs = [replace(base, batch_size=size) for size in batch_sizes]
    configs += [replace(base, max_batch_delay_ms=delay) for delay in delays_ms]
    configs += [replace(base, workers=workers, threads=threads) for workers, threads in worker_thread_pairs]
    unique: list[HandlerSettings] = []
    for config in configs:
        if config not in unique:
            unique.append(config)
    return unique


@dataclass(frozen=True)
class Profile:
    """Everything a run measures; durations are in seconds."""

    name: str
    concurrency: tuple[int, ...]
    warmup_s: float
    duration_s: float
    # Open-loop rates as fractions of the measured closed-loop peak of the TorchServe path.
    open_loop_fractions: tuple[float, ...]
    price_concurrency: tuple[int, ...]
    fullsize_concurrency: tuple[int, ...]
    inprocess_batch_sizes: tuple[int, ...]
    # PyTorch eager is several times slower than ONNX Runtime on CPUs, so it gets fewer batch sizes.
    torch_batch_sizes: tuple[int, ...]
    inprocess_duration_s: float
    # Handler sweep around the served default, one setting at a time (see handler_sweep).
    sweep_batch_sizes: tuple[int, ...]
    sweep_delays_ms: tuple[int, ...]
    sweep_workers_threads: tuple[tuple[int, int], ...]
    sweep_concurrency: tuple[int, ...]
    accuracy_limit: int | None  # validation photos scored per model; None scores the whole split
    # Concurrency of the extra levels during which py-spy samples the servers; None skips profiling.
    profile_concurrency: int | None = None
    stock: bool = True
    int8: bool = True
    stored_photos_per_label: int = 8
    text_rows: int = 200
    max_requests_per_level: int = 20_000
    request_timeout_s: float = 60.0
    notes: tuple[str, ...] = field(default_factory=tuple)


PROFILES: dict[str, Profile] = {
    # A few seconds per series: checks that every path works end to end, not how fast it is.
    "smoke": Profile(
        name="smoke",
        concurrency=(1, 2),
        warmup_s=0.5,
        duration_s=1.5,
        open_loop_fractions=(0.5,),
        price_concurrency=(1, 2),
        fullsize_concurrency=(1,),
        inprocess_batch_sizes=(1, 2),
        torch_batch_sizes=(1,),
        inprocess_duration_s=1.0,
        sweep_batch_sizes=(),
        sweep_delays_ms=(),
        sweep_workers_threads=(),
        sweep_concurrency=(),
        accuracy_limit=32,
        stock=False,
        int8=False,
        stored_photos_per_label=2,
        text_rows=20,
    ),
    # The documented run: about 15 minutes on an idle 2-core CPU.
    "full": Profile(
        name="full",
        concurrency=(1, 2, 4, 8, 16, 32),
        warmup_s=3.0,
        duration_s=10.0,
        open_loop_fractions=(0.5, 0.8, 1.0),
        price_concurrency=(1, 8, 32),
        fullsize_concurrency=(1, 8),
        inprocess_batch_sizes=(1, 2, 4, 8, 16),
        torch_batch_sizes=(1, 4),
        inprocess_duration_s=5.0,
        sweep_batch_sizes=(1, 4, 8),
        sweep_delays_ms=(0, 5, 20),
        sweep_workers_threads=((1, 2), (2, 1)),
        sweep_concurrency=(1, 8),
        accuracy_limit=None,
        profile_concurrency=16,
    ),
    # For benchmarks/gpu_check.sh with --device cuda: batch sizes up to 64, fewer and
    # shorter levels, so the whole comparison fits in 8 minutes.
    "gpu": Profile(
        name="gpu",
        concurrency=(1, 4, 16, 64),
        warmup_s=1.5,
        duration_s=4.0,
        open_loop_fractions=(0.5, 1.0),
        price_concurrency=(1, 8),
        fullsize_concurrency=(1, 16),
        inprocess_batch_sizes=(1, 8, 32, 64),
        torch_batch_sizes=(1, 8, 32, 64),
        inprocess_duration_s=2.0,
        sweep_batch_sizes=(8, 32, 64),
        sweep_delays_ms=(0, 20),
        sweep_workers_threads=(),
        sweep_concurrency=(16, 64),
        accuracy_limit=2000,
        profile_concurrency=16,
    ),
}
