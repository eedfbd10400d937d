"""`python -m frontend_api stack`: the whole service on one machine, as `make serve` runs it.

First it makes sure that model_store/ contains both archives. When they are
missing, it builds demo models from the bundled sample, or with --full exports runs
trained on a full Kaggle download. Then it starts TorchServe on free 127.0.0.1 ports
with token authorization and the facade in front of it, prints the URL and a
ready-to-paste curl command, and serves until Ctrl-C or SIGTERM. On exit the facade
stops first and TorchServe after it.
"""

import argparse
import asyncio
import logging
import multiprocessing
import shlex
import shutil
import signal
import sys
from pathlib import Path

import uvicorn

from frontend_api.app import create_app
from frontend_api.archives import price_fields_from_archive
from frontend_api.logs import configure_logging
from frontend_api.settings import Settings

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_STORE = REPO_ROOT / "model_store"
DEFAULT_WORK_DIR = REPO_ROOT / "runs" / "stack"
ARCHIVE_NAMES = ("fashion_classifier.mar", "price_regressor.mar")
BUILD_STOP_TIMEOUT_S = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the stack command's options to `parser`."""
    # Where the archives and the working files go.
    parser.add_argument(
        "--model-store", type=Path, default=DEFAULT_MODEL_STORE,
        help="folder with fashion_classifier.mar and price_regressor.mar; built there when missing (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--work-dir", type=Path, default=DEFAULT_WORK_DIR,
        help="folder for training runs, exports and TorchServe's logs and keys (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--rebuild", action="store_true", help="build the archives even when model_store/ has them")

    # Serving models trained on the full data instead of the demo models.
    parser.add_argument(
        "--full", action="store_true",
        help="serve models trained on the full Kaggle download in --data-root instead of the bundled sample; "
        "trains them with the training CLI when --classifier-run or --price-run has no model yet",
    )  # fmt: skip
    parser.add_argument(
        "--data-root", type=Path, default=None,
        help="full data root holding hm/ (default: $FPS_DATA_ROOT, else ../shared/data beside the repository)",
    )  # fmt: skip
    parser.add_argument(
        "--classifier-run", type=Path, default=None,
        help="classifier run folder with model.pt for --full (default: WORK_DIR/full/classifier)",
    )  # fmt: skip
    parser.add_argument(
        "--price-run", type=Path, default=None,
        help="price run folder with price_model.joblib for --full (default: WORK_DIR/full/price-hm)",
    )  # fmt: skip
    parser.add_argument(
        "--profile", choices=("quick", "full"), default="quick",
        help="training profile when --full trains the classifier: quick for a CPU, full for a GPU (default: %(default)s)",
    )  # fmt: skip

    # Serving settings.
    parser.add_argument(
        "--archive-profile", choices=("cpu", "gpu"), default="cpu",
        help="TorchServe model-config profile packed into the archives (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--host", default=None, help="facade address (default: FPS_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="facade port, 0 for a free one (default: FPS_PORT or 8000)")


def main(args: argparse.Namespace) -> int:
    """Run the stack until interrupted; returns the process exit code."""
    settings = Settings(**{key: getattr(args, key) for key in ("host", "port") if getattr(args, key) is not None})
    _configure_logging(settings)

    if shutil.which("java") is None:
        print("Java 17 was not found. TorchServe's frontend is a Java program; install it first, "
              "e.g. `sudo apt-get install openjdk-17-jre-headless`.", file=sys.stderr)  # fmt: skip
        return 1

    # uvicorn re-raises SIGTERM after its graceful shutdown; turning it into SystemExit
    # lets the finally blocks below stop TorchServe instead of the process dying at once.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        ensure_archives(args)
        serve(args, settings)
    except KeyboardInterrupt:
        logger.info("stopped after Ctrl-C")
    except SystemExit as stop:
        return 0 if stop.code in (None, 0) else int(stop.code)
    return 0


def _configure_logging(settings: Settings) -> None:
    """Log the facade and, on the console, the model build and TorchServe launcher steps."""
    configure_logging(settings.log_level, settings.log_format)
    _log_to_console("model_store", "training", "export", level=settings.log_level)


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(0)


def ensure_archives(args: argparse.Namespace) -> None:
    """Build both archives into --model-store unless they exist (always with --full or --rebuild).

    The build runs in a child process. Training imports torch, which would otherwise
    stay in this process, the facade's, for its whole life (1.1 to 1.3 GB of RSS
    measured, instead of about 70 MB).
    """
    store = args.model_store
    present = all((store / name).is_file() for name in ARCHIVE_NAMES)
    if present and not (args.rebuild or args.full):
        logger.info("serving the archives in %s (pass --rebuild to build new ones)", store)
        return

    child = multiprocessing.get_context("spawn").Process(target=_build_archives, args=(args,), name="build-archives")
    child.start()
    try:
        child.join()
    finally:
        # The child is still alive only when this process exits early, e.g. after SIGTERM.
        if child.is_alive():
            child.terminate()
            child.join(BUILD_STOP_TIMEOUT_S)
    if child.exitcode != 0:
        logger.error("building the model archives failed (exit code %s); see the log above", child.exitcode)
        raise SystemExit(1)


def _build_archives(args: argparse.Namespace) -> None:
    """Train, export and archive the models; runs in the child process that ensure_archives starts."""
    _configure_logging(Settings())
    from frontend_api import model_build

    store = args.model_store
    if args.full:
        work = args.work_dir / "full"
        classifier_run = args.classifier_run or work / "classifier"
        price_run = args.price_run or work / "price-hm"
        model_build.train_full_runs(args.data_root, classifier_run, price_run, args.profile)
        model_build.archive_runs(classifier_run, price_run, work / "export", store, args.archive_profile)
    else:
        model_build.build_demo_archives(args.work_dir / "demo", store, args.archive_profile)


def serve(args: argparse.Namespace, settings: Settings) -> None:
    """Start TorchServe, then the facade in front of it; stop both when the facade exits."""
    from model_store.torchserve import ServerConfig, TorchServe

    config = ServerConfig(model_store=args.model_store).with_free_ports()
    print("Starting TorchServe (this takes about half a minute) ...", flush=True)
    with TorchServe(config, work_dir=args.work_dir / "torchserve") as torchserve:
        facade_settings = settings.model_copy(
            update={
                "torchserve_inference_url": torchserve.inference_url,
                "torchserve_management_url": torchserve.management_url,
                "torchserve_inference_key": _secret(torchserve.inference_key),
                "torchserve_management_key": _secret(torchserve.management_key),
                "price_fields": price_fields_from_archive(args.model_store / "price_regressor.mar"),
            }
        )
        run_facade(facade_settings, on_started=lambda url: print_banner(url, torchserve.inference_url))


def _secret(key: str | None):
    from pydantic import SecretStr

    return None if key is None else SecretStr(key)


def run_facade(settings: Settings, on_started) -> None:
    """Serve the facade with uvicorn in this thread; call `on_started(url)` once it accepts connections."""
    config = uvicorn.Config(create_app(settings), host=settings.host, port=settings.port, log_config=None)
    server = uvicorn.Server(config)
    asyncio.run(_serve_and_announce(server, on_started))


async def _serve_and_announce(server: uvicorn.Server, on_started) -> None:
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.1)
    if server.started:
        host, port = server.servers[0].sockets[0].getsockname()[:2]
        on_started(f"http://{host}:{port}")
    await serving


def print_banner(facade_url: str, torchserve_url: str) -> None:
    """Print where the service listens and a curl command that predicts one bundled photo."""
    photo, fields = example_product()
    form = " ".join(f"-F {shlex.quote(f'{name}={value}')}" for name, value in fields.items())
    print(
        f"\nFashion Product Service is up.\n"
        f"  API:        {facade_url}  (OpenAPI docs: {facade_url}/docs)\n"
        f"  TorchServe: {torchserve_url}  (token authorization on)\n\n"
        f"Try it:\n"
        f"  curl -s -F image=@{shlex.quote(str(photo))} {form} {facade_url}/v1/predict\n\n"
        f"Press Ctrl-C to stop.\n",
        flush=True,
    )


def example_product() -> tuple[Path, dict[str, str]]:
    """Return a bundled photo (relative to the repository when possible) and its product's name and description."""
    from frontend_api.model_build import SAMPLE_ROOT, first_sample_product

    photo, name, description = first_sample_product(SAMPLE_ROOT)
    try:
        photo = photo.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        pass
    return photo, {"name": name, "description": description}


def _log_to_console(*names: str, level: str) -> None:
    """Show the progress logs of model building and TorchServe next to the facade's logs."""
    handler = logging.getLogger("frontend_api").handlers[0]
    for name in names:
        logger_ = logging.getLogger(name)
        logger_.handlers = [handler]
        logger_.setLevel(level.upper())
        logger_.propagate = False
