"""Command line for the model archives and the TorchServe launcher.

    python -m model_store build [--classifier-dir DIR] [--price-dir DIR] [--profile gpu]
    python -m model_store start [--foreground] [--no-token-auth]
    python -m model_store status
    python -m model_store stop
"""

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

import yaml

from model_store.archive import KINDS, PROFILES, ArchiveError, build_archive
from model_store.torchserve import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MODEL_STORE,
    DEFAULT_START_TIMEOUT_S,
    DEFAULT_WORK_DIR,
    KEY_FILE_NAME,
    MODEL_NAMES,
    ServerConfig,
    TorchServe,
    TorchServeError,
)

logger = logging.getLogger("model_store")

# Default output folder of `python -m export`, one subfolder per model.
DEFAULT_EXPORT_DIR = Path(__file__).resolve().parents[1] / "runs" / "export"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # httpx logs every readiness poll at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return args.command(args)
    except (ArchiveError, TorchServeError, ValueError) as error:
        logger.error("%s", error)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model_store", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    build = commands.add_parser("build", help="pack exported models into .mar archives")
    build.add_argument(
        "--kinds", nargs="+", choices=tuple(KINDS), default=list(KINDS), help="archives to build (default: %(default)s)"
    )
    build.add_argument(
        "--classifier-dir",
        type=Path,
        default=DEFAULT_EXPORT_DIR / "fashion_classifier",
        help="classifier export folder with model.onnx and manifest.json (default: %(default)s)",
    )
    build.add_argument(
        "--price-dir",
        type=Path,
        default=DEFAULT_EXPORT_DIR / "price_regressor",
        help="price model export folder with model.onnx and manifest.json (default: %(default)s)",
    )
    build.add_argument("--store-dir", type=Path, default=DEFAULT_MODEL_STORE, help="folder for the .mar files (default: %(default)s)")
    build.add_argument("--profile", choices=PROFILES, default="cpu", help="model-config profile (default: %(default)s)")
    build.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KIND.KEY=VALUE",
        help="override a model-config value, for example classifier.batchSize=4 or classifier.handler.top_k=5",
    )
    build.set_defaults(command=run_build)

    start = commands.add_parser("start", help="start TorchServe with the archives and wait until the models are ready")
    start.add_argument("--store-dir", type=Path, default=DEFAULT_MODEL_STORE, help="folder with the .mar files (default: %(default)s)")
    _add_work_dir(start)
    start.add_argument("--models", nargs="+", default=list(MODEL_NAMES), help="models to load (default: %(default)s)")
    start.add_argument("--address", default="127.0.0.1", help="address every listener binds to (default: %(default)s)")
    start.add_argument("--inference-port", type=int, default=8080, help="inference API port (default: %(default)s)")
    start.add_argument("--management-port", type=int, default=8081, help="management API port (default: %(default)s)")
    start.add_argument("--metrics-port", type=int, default=8082, help="metrics API port (default: %(default)s)")
    start.add_argument("--grpc-inference-port", type=int, default=7070, help="gRPC inference port (default: %(default)s)")
    start.add_argument("--grpc-management-port", type=int, default=7071, help="gRPC management port (default: %(default)s)")
    start.add_argument("--free-ports", action="store_true", help="pick free ports instead of the port options")
    start.add_argument(
        "--no-token-auth", action="store_true", help="turn token authorization off (local development only)"
    )
    start.add_argument("--jvm-heap", default="512m", help="maximum Java heap, as in -Xmx (default: %(default)s)")
    start.add_argument("--job-queue-size", type=int, default=100, help="requests queued per model (default: %(default)s)")
    start.add_argument(
        "--max-request-bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES, help="largest request body in bytes (default: %(default)s)"
    )
    start.add_argument("--workers", type=int, default=1, help="default workers per model (default: %(default)s)")
    start.add_argument(
        "--timeout", type=float, default=DEFAULT_START_TIMEOUT_S, help="seconds to wait for READY models (default: %(default)s)"
    )
    start.add_argument(
        "--foreground", action="store_true", help="keep running until interrupted (SIGINT or SIGTERM), then stop TorchServe"
    )
    start.set_defaults(command=run_start)

    status = commands.add_parser("status", help="print the models' worker status as JSON")
    _add_work_dir(status)
    status.set_defaults(command=run_status)

    stop = commands.add_parser("stop", help="stop the TorchServe that `start` left running")
    _add_work_dir(stop)
    stop.set_defaults(command=run_stop)
    return parser


def _add_work_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="TorchServe's working directory (default: %(default)s)"
    )


def run_build(args: argparse.Namespace) -> int:
    sources = {"classifier": args.classifier_dir, "price": args.price_dir}
    overrides = parse_overrides(args.overrides)
    for kind in args.kinds:
        archive = build_archive(sources[kind], kind, args.store_dir, overrides.get(kind), profile=args.profile)
        print(archive)
    return 0


def parse_overrides(items: list[str]) -> dict[str, dict]:
    """Turn ["classifier.handler.top_k=5", ...] into {"classifier": {"handler": {"top_k": 5}}}; values are YAML."""
    overrides: dict[str, dict] = {}
    for item in items:
        path, separator, raw_value = item.partition("=")
        keys = path.split(".")
        if not separator or len(keys) < 2 or keys[0] not in KINDS:
            raise ValueError(f"Invalid --set {item!r}; use KIND.KEY=VALUE with KIND one of {', '.join(KINDS)}.")
        target = overrides.setdefault(keys[0], {})
        for key in keys[1:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = yaml.safe_load(raw_value)
    return overrides


def run_start(args: argparse.Namespace) -> int:
    config = ServerConfig(
        model_store=args.store_dir,
        models=tuple(args.models),
        address=args.address,
        inference_port=args.inference_port,
        management_port=args.management_port,
        metrics_port=args.metrics_port,
        grpc_inference_port=args.grpc_inference_port,
        grpc_management_port=args.grpc_management_port,
        token_auth=not args.no_token_auth,
        jvm_heap=args.jvm_heap,
        job_queue_size=args.job_queue_size,
        max_request_bytes=args.max_request_bytes,
        default_workers_per_model=args.workers,
    )
    if args.free_ports:
        config = config.with_free_ports()

    server = TorchServe(config, args.work_dir)
    server.start(timeout_s=args.timeout, detach=not args.foreground)
    print(f"inference:  {server.inference_url}")
    print(f"management: {server.management_url}")
    print(f"metrics:    {server.metrics_url}")
    if config.token_auth:
        print(f"keys:       {server.work_dir / KEY_FILE_NAME} (send 'Authorization: Bearer <key>')")
    else:
        print("keys:       none, token authorization is off")

    if not args.foreground:
        return 0
    _wait_for_signal()
    server.stop()
    return 0


def _wait_for_signal() -> None:
    received = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda number, frame: received.append(number))
    while not received:
        signal.pause()
    logger.info("Received signal %d, stopping TorchServe", received[0])


def run_status(args: argparse.Namespace) -> int:
    server = TorchServe.attach(args.work_dir)
    if server.launcher is None:
        raise TorchServeError(f"The TorchServe recorded in {server.work_dir} is not running; start it again.")
    status = {}
    for model in server.config.models:
        description = server.describe(model)[0]
        status[model] = {
            "version": description.get("modelVersion"),
            "batch_size": description.get("batchSize"),
            "max_batch_delay_ms": description.get("maxBatchDelay"),
            "workers": [worker.get("status") for worker in description.get("workers", [])],
        }
    print(json.dumps({"inference_url": server.inference_url, "models": status}, indent=2))
    return 0


def run_stop(args: argparse.Namespace) -> int:
    server = TorchServe.attach(args.work_dir)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
