"""One benchmark run: prepare the models, measure every comparison, write the report.

Steps, one after another, so that the run's own processes do not compete for the CPU:
1. in-process: raw ONNX Runtime (FP32 and INT8) and PyTorch eager on preprocessed tensors;
2. accuracy: FP32 and INT8 top-1 and macro-F1 on the training run's validation split;
3. served: TorchServe with this project's archives plus the facade (direct, open loop,
   full-size photos, /v1/classify, /v1/predict, /v1/price) and the stack's memory;
4. stock: TorchServe with the stock image_classifier handler and the same weights;
5. sweep: this project's handler at each batch size, batch delay and workers x threads.

In attach mode the run measures only step 3 against servers that are already running.
"""

import logging
import os
import platform
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

from benchmarks import accuracy, artifacts, inprocess, payloads
from benchmarks.inputs import BenchInputs, load_inputs
from benchmarks.memory import stack_memory
from benchmarks.profiles import HandlerSettings, Profile, handler_sweep
from benchmarks.report import write_report
from benchmarks.served import limits_for, measure_closed_levels, profiled_level, served_series, torchserve_series
from benchmarks.stack import Endpoints, Facade, start_torchserve, stop_torchserve, torchserve_endpoints
from benchmarks.stock import STOCK_MODEL_NAME, build_stock_archive
from training.transforms import eval_transform

logger = logging.getLogger(__name__)

RESULTS_SCHEMA_VERSION = 1
STEPS = ("inprocess", "accuracy", "served", "stock", "sweep")
CALIBRATION_PHOTOS = 100


@dataclass
class RunOptions:
    """Settings of one run: profile, device, models, skipped steps and the results folder."""

    profile: Profile
    out_dir: Path
    device: str = "cpu"
    image_size: int = artifacts.DEFAULT_IMAGE_SIZE
    data_root: str | None = None
    checkpoint: Path | None = None
    price_dir: Path | None = None
    price_run: Path | None = None
    price_archive: Path | None = None
    skip: frozenset[str] = frozenset()
    attach: Endpoints | None = None

    def enabled(self, step: str) -> bool:
        return step not in self.skip


def machine_info() -> dict:
    """Describe the machine and the software versions the numbers depend on."""
    cpu_model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break

    versions = {}
    for package in ("torch", "onnxruntime", "torchserve", "fastapi", "uvicorn", "aiohttp"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None

    return {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def preprocess_photos(inputs: BenchInputs, image_size: int) -> np.ndarray:
    """Preprocess the stored photos once with the training evaluation transform, as [N,3,H,W] float32."""
    transform = eval_transform(image_size)
    tensors = []
    for photo in inputs.stored_photos:
        with Image.open(photo.path) as image:
            tensors.append(transform(image.convert("RGB")).numpy())
    return np.stack(tensors).astype(np.float32)


def _resolve_checkpoint(options: RunOptions, models_dir: Path) -> tuple[Path, bool]:
    """Return (checkpoint, trained): the passed one, else the newest ResNet50 run, else a random ResNet50."""
    if options.checkpoint is not None:
        path = options.checkpoint / "model.pt" if options.checkpoint.is_dir() else options.checkpoint
        return path, True
    found = artifacts.find_resnet50_checkpoint()
    if found is not None:
        logger.info("using the newest trained ResNet50 checkpoint %s", found)
        return found, True
    return artifacts.random_resnet50_checkpoint(models_dir / "random_resnet50" / "model.pt"), False


def _split_tables(checkpoint: Path, trained: bool, inputs: BenchInputs):
    """Return (train, validation) tables of the run's split, or (None, None) when the data cannot form it."""
    try:
        train_table, val_table, _ = accuracy.split_tables(checkpoint.parent if trained else None, inputs.data_root)
    except (ValueError, FileNotFoundError) as error:
        # The bundled sample has ~30 photos per class, below the training filter's minimum.
        logger.warning("cannot rebuild the validation split from %s (%s); accuracy is skipped", inputs.data_root, error)
        return None, None
    return train_table, val_table


def _calibration_photos(train_table, inputs: BenchInputs) -> list[Path]:
    """Return training-side photos for INT8 calibration, or the stored benchmark photos without a split."""
    if train_table is not None and len(train_table):
        paths = [Path(path) for path in train_table["path"]]
    else:
        paths = [photo.path for photo in inputs.stored_photos]
    step = max(1, len(paths) // CALIBRATION_PHOTOS)
    return paths[::step][:CALIBRATION_PHOTOS]


def run_inprocess(models: artifacts.ModelArtifacts, tensors: np.ndarray, profile: Profile, device: str) -> dict:
    """Measure raw ONNX Runtime (FP32, INT8) and PyTorch eager at each batch size."""
    from training.checkpoint import load_checkpoint

    threads = os.cpu_count() or 1
    batch_sizes = profile.inprocess_batch_sizes
    duration = profile.inprocess_duration_s
    results = {}

    session = inprocess.ort_session(models.fp32_dir / "model.onnx", device, threads)
    results["ort_fp32"] = inprocess.sweep_batch_sizes("ort_fp32", inprocess.ort_runner(session), tensors, batch_sizes, duration_s=duration)
    del session

    if models.int8_dir is not None:
        # INT8 runs on the CPU execution provider, where ONNX Runtime has integer kernels.
        session = inprocess.ort_session(models.int8_dir / "model.onnx", "cpu", threads)
        results["ort_int8"] = inprocess.sweep_batch_sizes("ort_int8", inprocess.ort_runner(session), tensors, batch_sizes, duration_s=duration)
        del session

    model, _ = load_checkpoint(models.checkpoint)
    runner = inprocess.torch_runner(model, device, threads if device == "cpu" else None)
    results["torch_eager"] = inprocess.sweep_batch_sizes(
        "torch_eager", runner, tensors, profile.torch_batch_sizes, duration_s=duration, warmup_runs=1
    )
    return results


def run_accuracy(models: artifacts.ModelArtifacts, val_table, profile: Profile) -> dict:
    """Score FP32 and INT8 on the validation split with the CPU execution provider."""
    sessions = {"fp32": inprocess.ort_session(models.accuracy_fp32_dir / "model.onnx", "cpu")}
    if models.accuracy_int8_dir is not None:
        sessions["int8"] = inprocess.ort_session(models.accuracy_int8_dir / "model.onnx", "cpu")
    return accuracy.evaluate_sessions(
        sessions, list(val_table["path"]), list(val_table["target"]), models.trained_image_size, limit=profile.accuracy_limit
    )


def _price_archive(options: RunOptions, store_dir: Path) -> tuple[Path, str]:
    """Put price_regressor.mar into store_dir; returns its path and where the model came from.

    The first that applies: --price-dir (an export), --price-run (a price run folder),
    --price-archive, model_store/price_regressor.mar, the newest H&M price run under runs/.
    """
    from export.price import export_price_model
    from model_store.archive import build_archive

    profile = _store_profile(options)
    if options.price_dir is not None:
        return build_archive(options.price_dir, "price", store_dir, profile=profile), str(options.price_dir)

    default_archive = artifacts.REPO_ROOT / "model_store" / "price_regressor.mar"
    archive = options.price_archive or (default_archive if default_archive.is_file() else None)
    if options.price_run is None and archive is not None:
        if not archive.is_file():
            raise FileNotFoundError(f"price archive {archive} not found; pass an existing .mar or leave --price-archive out.")
        store_dir.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(archive, store_dir / "price_regressor.mar")), str(archive)

    run_dir = options.price_run or artifacts.find_price_run()
    if run_dir is None:
        raise FileNotFoundError(
            "No price model found: pass --price-dir, --price-run or --price-archive, "
            "or build the demo models with `make serve`."
        )
    export_dir = options.out_dir / "models" / "price_regressor"
    export_price_model(run_dir, export_dir, data_root=Path(options.data_root) if options.data_root else None)
    return build_archive(export_dir, "price", store_dir, profile=profile), str(run_dir)


@contextmanager
def private_tmpdir(path: Path):
    """Point TMPDIR at a folder of this run while archives are built.

    torch-model-archiver 0.12 stages files in $TMPDIR/<model name> and deletes that
    folder afterwards, so two builds of fashion_classifier.mar at the same time (a test
    run beside the benchmark, say) delete each other's files.
    """
    path.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = previous


def _store_profile(options: RunOptions) -> str:
    return "gpu" if options.device == "cuda" else "cpu"


def _handler_settings(config: dict) -> HandlerSettings:
    """Read the sweep's view of a classifier model-config: batch, delay, workers, threads."""
    workers = int(config["maxWorkers"])
    threads = int(config["handler"].get("intra_op_threads", 0)) or max(1, (os.cpu_count() or 1) // workers)
    return HandlerSettings(int(config["batchSize"]), int(config["maxBatchDelay"]), workers, threads)


def default_handler_settings(options: RunOptions) -> HandlerSettings:
    """Return the served classifier's settings: model_store's profile for the device, unchanged."""
    from model_store.archive import model_config

    return _handler_settings(model_config("classifier", _store_profile(options)))


def worker_pid(server, model: str) -> int:
    """Return the pid of the model's first worker, from TorchServe's management API."""
    return int(server.describe(model)[0]["workers"][0]["pid"])


def profile_served(options: RunOptions, server, endpoints: Endpoints, inputs: BenchInputs) -> dict:
    """Sample the classifier worker (TorchServe direct) and the facade plus worker (/v1/classify) under load."""
    profile = options.profile
    out_dir = options.out_dir / "profiles"
    worker = worker_pid(server, endpoints.classifier_model)
    concurrency = profile.profile_concurrency
    return {
        f"torchserve_onnx_c{concurrency}": profiled_level(
            endpoints.torchserve_url,
            payloads.torchserve_image(endpoints.classifier_model, inputs.stored_photos),
            endpoints.torchserve_headers,
            profile,
            {"classifier_worker": worker},
            out_dir / f"torchserve_onnx_c{concurrency}",
        ),
        f"facade_classify_c{concurrency}": profiled_level(
            endpoints.facade_url,
            payloads.facade_classify(inputs.stored_photos),
            None,
            profile,
            {"facade": endpoints.root_pids[-1], "classifier_worker": worker},
            out_dir / f"facade_classify_c{concurrency}",
        ),
    }


@dataclass
class ServedOutcome:
    """Results of the served step: series, stack memory, CPU profiles and the price model it served."""

    series: dict
    memory: dict
    profiles: dict
    price_model: str


def run_served(options: RunOptions, models: artifacts.ModelArtifacts, inputs: BenchInputs) -> ServedOutcome:
    """Start TorchServe with both archives and the facade; measure the served series, the memory and the profiles."""
    from frontend_api.archives import price_fields_from_archive
    from model_store.archive import build_archive

    store_dir = options.out_dir / "store" / "default"
    with private_tmpdir(options.out_dir / "tmp"):
        build_archive(models.fp32_dir, "classifier", store_dir, profile=_store_profile(options))
        price_archive, price_source = _price_archive(options, store_dir)

    server = start_torchserve(store_dir, ("fashion_classifier", "price_regressor"), options.out_dir / "torchserve" / "default")
    facade = None
    try:
        price_fields = list(price_fields_from_archive(price_archive))
        facade = Facade(server, price_fields, options.out_dir / "logs" / "facade.log")
        endpoints = torchserve_endpoints(server)
        endpoints.facade_url = facade.url
        endpoints.price_fields = price_fields
        endpoints.root_pids.append(facade.process.pid)

        memory_idle = stack_memory(endpoints.root_pids)
        series = served_series(endpoints, inputs, options.profile)
        memory = stack_memory(endpoints.root_pids)
        memory["idle_rss_total_bytes"] = memory_idle["rss_total_bytes"]
        memory["measured"] = "after the served series, with both models loaded and the facade running"
        profiles = profile_served(options, server, endpoints, inputs) if options.profile.profile_concurrency else {}
    finally:
        if facade is not None:
            facade.stop()
        stop_torchserve(server)
    return ServedOutcome(series, memory, profiles, price_source)


def run_stock(
    options: RunOptions, models: artifacts.ModelArtifacts, inputs: BenchInputs, settings: HandlerSettings
) -> tuple[dict, dict]:
    """Serve the same weights with TorchServe's stock image_classifier handler at the same batching settings.

    Returns the served series and, when the profile sets profile_concurrency, the stock worker's CPU profile.
    """
    store_dir = options.out_dir / "store" / "stock"
    with private_tmpdir(options.out_dir / "tmp"):
        build_stock_archive(
            models.checkpoint,
            store_dir,
            batch_size=settings.batch_size,
            max_batch_delay_ms=settings.max_batch_delay_ms,
            workers=settings.workers,
        )
    server = start_torchserve(store_dir, (STOCK_MODEL_NAME,), options.out_dir / "torchserve" / "stock")
    profile = options.profile
    try:
        endpoints = torchserve_endpoints(server)
        series = torchserve_series(
            endpoints,
            inputs,
            profile,
            STOCK_MODEL_NAME,
            "torchserve_stock",
            "TorchServe, stock image_classifier handler, PyTorch eager",
        )
        profiles = {}
        if profile.profile_concurrency:
            name = f"torchserve_stock_c{profile.profile_concurrency}"
            profiles[name] = profiled_level(
                endpoints.torchserve_url,
                payloads.torchserve_image(STOCK_MODEL_NAME, inputs.stored_photos),
                endpoints.torchserve_headers,
                profile,
                {"stock_worker": worker_pid(server, STOCK_MODEL_NAME)},
                options.out_dir / "profiles" / name,
            )
    finally:
        stop_torchserve(server)
    return series, profiles


def _measure_sweep_config(
    options: RunOptions, models: artifacts.ModelArtifacts, inputs: BenchInputs, settings: HandlerSettings, index: int
) -> list[dict]:
    """Serve the classifier alone with one handler configuration and measure the sweep's levels."""
    from model_store.archive import build_archive

    profile = options.profile
    store_dir = options.out_dir / "store" / f"sweep{index}"
    with private_tmpdir(options.out_dir / "tmp"):
        build_archive(models.fp32_dir, "classifier", store_dir, overrides=settings.overrides(), profile=_store_profile(options))
    server = start_torchserve(store_dir, ("fashion_classifier",), options.out_dir / "torchserve" / f"sweep{index}")
    try:
        endpoints = torchserve_endpoints(server)
        return measure_closed_levels(
            endpoints.torchserve_url,
            payloads.torchserve_image("fashion_classifier", inputs.stored_photos),
            profile.sweep_concurrency,
            limits_for(profile),
            endpoints.torchserve_headers,
            endpoints,
            "fashion_classifier",
        )
    finally:
        stop_torchserve(server)


def run_sweep(
    options: RunOptions, models: artifacts.ModelArtifacts, inputs: BenchInputs, default: HandlerSettings, results: dict
) -> list[dict]:
    """Measure this project's handler at each configuration of the profile's sweep.

    The default configuration was already measured in the served step, so its levels
    are reused instead of restarting TorchServe for it. A configuration that fails is
    recorded in results["errors"] and the sweep goes on.
    """
    profile = options.profile
    served = results["served"]
    configs = handler_sweep(default, profile.sweep_batch_sizes, profile.sweep_delays_ms, profile.sweep_workers_threads)
    entries = []
    for index, settings in enumerate(configs):
        if settings == default and "torchserve_onnx" in served:
            levels = [level for level in served["torchserve_onnx"]["levels"] if level["concurrency"] in profile.sweep_concurrency]
            entries.append({"config": settings.to_dict(), "reused_from": "torchserve_onnx", "levels": levels})
            continue

        logger.info("handler sweep %d/%d: %s", index + 1, len(configs), settings.to_dict())
        levels = _run_step(results, f"sweep {settings.to_dict()}", lambda: _measure_sweep_config(options, models, inputs, settings, index))
        if levels is not None:
            entries.append({"config": settings.to_dict(), "levels": levels})
    return entries


def new_results(options: RunOptions, inputs: BenchInputs) -> dict:
    """Start the results dict with what every run records."""
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "profile": options.profile.name,
        "device": options.device,
        "mode": "attach" if options.attach else "managed",
        "machine": machine_info(),
        "inputs": inputs.describe(),
        "limits": {
            "warmup_s": options.profile.warmup_s,
            "duration_s": options.profile.duration_s,
            "max_requests_per_level": options.profile.max_requests_per_level,
            "request_timeout_s": options.profile.request_timeout_s,
        },
        "notes": list(options.profile.notes),
        "model": {},
        "inprocess": {},
        "accuracy": {},
        "served": {},
        "handler_sweep": [],
        "memory": None,
        "profiles": {},
        "errors": [],
    }


def run_attached(options: RunOptions) -> dict:
    """Measure the served series against servers that are already running; write and return the results."""
    inputs = load_inputs(options.data_root, options.profile.stored_photos_per_label, text_rows=options.profile.text_rows)
    results = new_results(options, inputs)
    results["served"] = _run_step(results, "served", lambda: served_series(options.attach, inputs, options.profile)) or {}
    results["machine"]["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    write_report(results, options.out_dir)
    return results


def run_managed(options: RunOptions) -> dict:
    """Prepare the models, start and stop every server, measure each enabled step; write and return the results."""
    profile = options.profile
    inputs = load_inputs(options.data_root, profile.stored_photos_per_label, text_rows=profile.text_rows)
    results = new_results(options, inputs)
    models_dir = options.out_dir / "models"

    checkpoint, trained = _resolve_checkpoint(options, models_dir)
    train_table, val_table = _split_tables(checkpoint, trained, inputs)
    calibration = _calibration_photos(train_table, inputs) if profile.int8 else None
    models = artifacts.export_classifiers(checkpoint, trained, models_dir, options.image_size, calibration)
    results["model"] = models.describe()
    if not trained:
        results["notes"].append(
            "The classifier is a randomly initialised ResNet50: throughput and latency are those of the real "
            "architecture, but accuracy numbers wait for a trained checkpoint."
        )
    if models.image_size != models.trained_image_size:
        results["notes"].append(
            f"Throughput and latency are measured at {models.image_size} px with the checkpoint's weights; "
            f"accuracy is measured at the {models.trained_image_size} px the checkpoint was trained at."
        )
    if models.image_size != artifacts.DEFAULT_IMAGE_SIZE:
        results["notes"].append(
            f"The model runs at {models.image_size} px while the stock handler always crops to 224 px, so the stock "
            f"handler computes about {(224 / models.image_size) ** 2:.1f}x as much per image."
        )

    try:
        _measure_steps(options, models, inputs, val_table, trained, results)
    finally:
        # A failed or interrupted run still leaves the levels it measured in a report.
        results["machine"]["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
        write_report(results, options.out_dir)
    return results


def _run_step(results: dict, step: str, measure):
    """Run one measurement step; record a failure in results["errors"] and go on with the next step.

    A benchmark run takes many minutes, so one failed step (a server that did not start,
    say) must not discard what the other steps measured.
    """
    try:
        return measure()
    except Exception as error:  # noqa: BLE001 - reported in the results and the log, then the run goes on
        logger.exception("benchmark step %s failed", step)
        results["errors"].append({"step": step, "error": f"{type(error).__name__}: {error}"})
        return None


def _measure_steps(options: RunOptions, models, inputs: BenchInputs, val_table, trained: bool, results: dict) -> None:
    """Run the enabled steps in order and store what each measured in results."""
    profile = options.profile
    if options.enabled("inprocess"):
        tensors = preprocess_photos(inputs, models.image_size)
        results["inprocess"] = _run_step(results, "inprocess", lambda: run_inprocess(models, tensors, profile, options.device)) or {}
    if options.enabled("accuracy") and val_table is not None:
        scores = _run_step(results, "accuracy", lambda: run_accuracy(models, val_table, profile))
        if scores:
            results["accuracy"] = {**scores, "trained": trained}

    default_settings = default_handler_settings(options)
    results["model"]["served_config"] = default_settings.to_dict()
    if options.enabled("served"):
        outcome = _run_step(results, "served", lambda: run_served(options, models, inputs))
        if outcome is not None:
            results["served"], results["memory"], results["profiles"] = outcome.series, outcome.memory, outcome.profiles
            results["model"]["price_model"] = outcome.price_model
    if options.enabled("stock") and profile.stock:
        stock = _run_step(results, "stock", lambda: run_stock(options, models, inputs, default_settings))
        if stock is not None:
            results["served"].update(stock[0])
            results["profiles"].update(stock[1])
    if options.enabled("sweep") and profile.sweep_batch_sizes:
        results["handler_sweep"] = run_sweep(options, models, inputs, default_settings, results)

