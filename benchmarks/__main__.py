"""Command line: run the benchmark sweep, or render a report from a results.json again.

    python -m benchmarks run --profile smoke        # a few seconds per series, checks every path
    python -m benchmarks run --profile full         # the documented run, about 15 minutes on 2 idle cores
    python -m benchmarks report results/<timestamp>/results.json

Every server the run measures listens on 127.0.0.1. The load generator rejects any
other host, and each level is bounded by its duration and a request count.
"""

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.loadgen import check_loopback_url
from benchmarks.profiles import PROFILES
from benchmarks.report import write_report
from benchmarks.runner import STEPS, RunOptions, run_attached, run_managed
from benchmarks.servermetrics import MetricsEndpoint, MetricsLog
from benchmarks.stack import Endpoints
from frontend_api.settings import Settings
from training.data import REPO_ROOT

logger = logging.getLogger("benchmarks")

KEY_ENV = "FPS_TORCHSERVE_INFERENCE_KEY"


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 1,2,4, got {text!r}") from error
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _loopback_url(text: str) -> str:
    try:
        check_loopback_url(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    return text.rstrip("/")


def add_run_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the sweep and write results.json, report.md and PNG plots",
        description="Run the benchmark sweep. Without --torchserve-url it builds the archives, starts and stops "
        "TorchServe and the facade itself; with it, it measures servers that are already running.",
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="smoke", help="levels and durations to run (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: results/<UTC timestamp>/ in the repository)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="execution device for the models (default: %(default)s)")
    parser.add_argument(
        "--image-size",
        type=int,
        default=224,
        help="input size in pixels for throughput and latency; accuracy uses the checkpoint's own size (default: %(default)s, the stock handler's crop)",
    )
    parser.add_argument("--data-root", default=None, help="folder with hm/ in the Kaggle layout (default: $FPS_DATA_ROOT, else ../shared/data, else the bundled sample)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="ResNet50 model.pt or its run folder (default: the newest ResNet50 run under runs/, else a random ResNet50)")
    parser.add_argument("--price-dir", type=Path, default=None, help="exported price model folder (model.onnx + manifest.json) to archive and serve")
    parser.add_argument("--price-run", type=Path, default=None, help="price run folder (price_model.joblib + schema.json) to export and serve")
    parser.add_argument("--price-archive", type=Path, default=None, help="price_regressor.mar to serve (default: model_store/price_regressor.mar if it exists, else the newest H&M price run under runs/)")
    parser.add_argument("--skip", nargs="+", choices=STEPS, default=[], help="steps to leave out")
    parser.add_argument("--concurrency", type=_int_list, default=None, help="closed-loop concurrency levels, e.g. 1,2,4 (default: the profile's)")
    parser.add_argument("--duration", type=float, default=None, help="measured seconds per level (default: the profile's)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds per level, not measured (default: the profile's)")

    attach = parser.add_argument_group(
        "attach mode", f"measure running servers instead; the TorchServe inference key is read from ${KEY_ENV}"
    )
    attach.add_argument("--torchserve-url", type=_loopback_url, default=None, help="TorchServe inference API, e.g. http://127.0.0.1:8080")
    attach.add_argument("--facade-url", type=_loopback_url, default=None, help="facade base URL, e.g. http://127.0.0.1:8000")
    attach.add_argument("--metrics-url", type=_loopback_url, default=None, help="TorchServe metrics API (Prometheus mode), e.g. http://127.0.0.1:8082")
    attach.add_argument("--metrics-log-dir", type=Path, default=None, help="TorchServe logs/ folder (log mode), instead of --metrics-url")
    parser.set_defaults(handler=run_command)


def _profile_with_overrides(args):
    profile = PROFILES[args.profile]
    overrides = {}
    if args.concurrency is not None:
        overrides["concurrency"] = args.concurrency
    if args.duration is not None:
        overrides["duration_s"] = args.duration
    if args.warmup is not None:
        overrides["warmup_s"] = args.warmup
    return dataclasses.replace(profile, **overrides)


def _attach_endpoints(args) -> Endpoints:
    key = os.environ.get(KEY_ENV)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    metrics = None
    if args.metrics_log_dir is not None:
        metrics = MetricsLog(args.metrics_log_dir)
    elif args.metrics_url is not None:
        metrics = MetricsEndpoint(args.metrics_url)
    # The direct price series sends the fields the facade sends: FPS_PRICE_FIELDS, read by the facade's settings.
    return Endpoints(
        torchserve_url=args.torchserve_url,
        torchserve_headers=headers,
        metrics=metrics,
        facade_url=args.facade_url,
        price_fields=list(Settings().price_fields),
    )


def run_command(args) -> int:
    out_dir = args.out or REPO_ROOT / "results" / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    if args.facade_url and not args.torchserve_url:
        raise ValueError("--facade-url needs --torchserve-url too, because the run also measures TorchServe directly")
    options = RunOptions(
        profile=_profile_with_overrides(args),
        out_dir=out_dir,
        device=args.device,
        image_size=args.image_size,
        data_root=args.data_root,
        checkpoint=args.checkpoint,
        price_dir=args.price_dir,
        price_run=args.price_run,
        price_archive=args.price_archive,
        skip=frozenset(args.skip),
        attach=_attach_endpoints(args) if args.torchserve_url else None,
    )
    results = run_attached(options) if options.attach else run_managed(options)

    print((out_dir / "report.md").read_text())
    print(f"Results written to {out_dir}")
    failed = sum(level["failed"] for series in results["served"].values() for level in series["levels"])
    if failed:
        logger.warning("%d requests failed; see the errors column of the report", failed)
    return 0


def add_report_command(subparsers) -> None:
    parser = subparsers.add_parser("report", help="render report.md and the plots again from a results.json")
    parser.add_argument("results", type=Path, help="results.json of an earlier run")
    parser.add_argument("--out", type=Path, default=None, help="folder to write into (default: the results file's folder)")
    parser.set_defaults(handler=report_command)


def report_command(args) -> int:
    results = json.loads(args.results.read_text())
    # Recompute the ratios and targets, so a report rendered again uses the current target list.
    results.pop("ratios", None)
    results.pop("targets", None)
    paths = write_report(results, args.out or args.results.parent)
    print(paths["markdown"].read_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_run_command(subparsers)
    add_report_command(subparsers)
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request at INFO, which would flood the log during a load level.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # SIGTERM (from `timeout`, say) becomes SystemExit, so the finally blocks stop the servers this run started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        logger.error("%s", error)
        return 1


if __name__ == "__main__":
    sys.exit(main())
