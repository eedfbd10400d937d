"""Container entrypoint: run TorchServe, the facade, or both, from the archives in the model store.

    entrypoint.py all          TorchServe on 127.0.0.1 (token authorization on) and the
                               facade in front of it; the image's default command
    entrypoint.py torchserve   TorchServe alone, listening on FPS_TS_ADDRESS (default
                               0.0.0.0) for a facade in another container
    entrypoint.py facade       the facade alone, reaching TorchServe through the
                               FPS_TORCHSERVE_* variables
    entrypoint.py healthcheck  exit 0 when a URL (default: the facade's /readyz) returns 200
    entrypoint.py build-demo-models
                               train the demo models on the bundled sample and pack the
                               archives (the Dockerfile's models stage; needs the
                               training dependencies)

`--dry-run` prints what a command would start, as JSON, and exits. The script runs
the same way outside Docker, from a checkout with the project's virtual environment.
Run `entrypoint.py COMMAND --help` for the options; every option also reads the
environment variable named in its help.
"""

import argparse
import json
import logging
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# Started as a script, Python puts only deploy/ on sys.path. The project's packages
# (model_store, frontend_api) are one level up, in the image as in a checkout.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

logger = logging.getLogger("entrypoint")

PRICE_ARCHIVE = "price_regressor.mar"
HEALTHCHECK_TIMEOUT_S = 4.0


def env_default(name: str, default: str) -> str:
    """Return the environment variable `name`, or `default` when it is unset or empty."""
    return os.environ.get(name) or default


def env_number(name: str, default: str, kind: type):
    """Read a numeric environment variable as `kind` (int or float), raising ValueError that names an invalid one."""
    value = env_default(name, default)
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a valid {kind.__name__}.") from None


def env_flag(name: str, default: bool) -> bool:
    """Read a true/false environment variable, raising ValueError on any other value."""
    value = os.environ.get(name)
    if not value:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={value!r} is not a boolean; use true or false.")


# --- Command line ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="entrypoint.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    all_parser = commands.add_parser("all", help="TorchServe on 127.0.0.1 and the facade in front of it")
    _add_torchserve_options(all_parser, address_default="127.0.0.1", token_auth_default=True)
    all_parser.set_defaults(handler=run_all)

    torchserve = commands.add_parser("torchserve", help="TorchServe alone, for a facade in another container")
    _add_torchserve_options(torchserve, address_default="0.0.0.0", token_auth_default=False)
    torchserve.set_defaults(handler=run_torchserve)

    facade = commands.add_parser("facade", help="the facade alone (FPS_TORCHSERVE_* name the TorchServe to use)")
    _add_model_store_option(facade)
    _add_dry_run_option(facade)
    _add_work_dir_option(facade)
    facade.set_defaults(handler=run_facade)

    healthcheck = commands.add_parser("healthcheck", help="exit 0 when the URL returns 200, 1 otherwise")
    healthcheck.add_argument(
        "--url",
        help="URL to GET (default: what the running command recorded in FPS_WORK_DIR: the facade's /readyz, "
        "or TorchServe's /ping for the torchserve command)",
    )
    _add_work_dir_option(healthcheck)
    healthcheck.set_defaults(handler=run_healthcheck)

    build = commands.add_parser("build-demo-models", help="train the demo models on the bundled sample and pack the archives")
    build.add_argument("--out", type=Path, required=True, help="folder for fashion_classifier.mar and price_regressor.mar")
    build.add_argument("--profile", choices=("cpu", "gpu"), default="cpu", help="model-config profile (default: %(default)s)")
    build.add_argument(
        "--work-dir", type=Path, default=REPO_ROOT / "runs" / "demo", help="folder for training runs and exports (default: %(default)s)"
    )
    _add_dry_run_option(build)
    build.set_defaults(handler=run_build_demo_models)
    return parser


def _add_model_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-store",
        type=Path,
        default=Path(env_default("FPS_MODEL_STORE", str(REPO_ROOT / "model_store"))),
        help="folder with fashion_classifier.mar and price_regressor.mar (FPS_MODEL_STORE; default: %(default)s)",
    )


def _add_dry_run_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="print what would start, as JSON, and exit")


def _add_work_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=default_work_dir(),
        help="writable folder for TorchServe's config, logs, keys and temporary files, and the health check "
        "target (FPS_WORK_DIR; default: %(default)s)",
    )


def default_work_dir() -> Path:
    return Path(env_default("FPS_WORK_DIR", str(REPO_ROOT / "runs" / "entrypoint")))


def _add_torchserve_options(parser: argparse.ArgumentParser, address_default: str, token_auth_default: bool) -> None:
    _add_model_store_option(parser)
    _add_dry_run_option(parser)
    _add_work_dir_option(parser)
    parser.add_argument(
        "--address",
        default=env_default("FPS_TS_ADDRESS", address_default),
        help="address TorchServe's listeners bind to (FPS_TS_ADDRESS; default: %(default)s)",
    )
    parser.add_argument(
        "--token-auth",
        action=argparse.BooleanOptionalAction,
        default=env_flag("FPS_TS_TOKEN_AUTH", token_auth_default),
        help="TorchServe token authorization (FPS_TS_TOKEN_AUTH=true|false; default: %(default)s)",
    )
    parser.add_argument(
        "--jvm-heap",
        default=env_default("FPS_TS_JVM_HEAP", "512m"),
        help="maximum Java heap of TorchServe's frontend, as in -Xmx (FPS_TS_JVM_HEAP; default: %(default)s)",
    )
    parser.add_argument(
        "--job-queue-size",
        type=int,
        default=env_number("FPS_TS_JOB_QUEUE_SIZE", "100", int),
        help="requests queued per model before TorchServe returns 503 (FPS_TS_JOB_QUEUE_SIZE; default: %(default)s)",
    )
    parser.add_argument(
        "--extra-properties",
        type=Path,
        default=os.environ.get("FPS_TS_EXTRA_PROPERTIES") or None,
        help="config.properties file whose keys are added to, or replace, the generated ones (FPS_TS_EXTRA_PROPERTIES)",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=env_number("FPS_TS_START_TIMEOUT_S", "180", float),
        help="seconds to wait for both models to be READY (FPS_TS_START_TIMEOUT_S; default: %(default)s)",
    )


# --- TorchServe ----------------------------------------------------------------------------


def read_properties(path: Path) -> dict[str, str]:
    """Parse a Java properties file of `key=value` lines, skipping blank lines and lines that start with #."""
    properties = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, separator, value = line.partition("=")
        if not separator or not key.strip():
            raise ValueError(f"{path}:{number}: expected key=value, got {line!r}.")
        properties[key.strip()] = value.strip()
    return properties


def server_config(args: argparse.Namespace, free_ports: bool):
    """Build the TorchServe settings, on unused ports when `free_ports` is set and on 8080-8082 and 7070-7071 otherwise."""
    from model_store.torchserve import ServerConfig

    extra = read_properties(args.extra_properties) if args.extra_properties else {}
    config = ServerConfig(
        model_store=args.model_store,
        address=args.address,
        token_auth=args.token_auth,
        jvm_heap=args.jvm_heap,
        job_queue_size=args.job_queue_size,
        extra_properties=extra,
    )
    return config.with_free_ports() if free_ports else config


def ping_url(config) -> str:
    """Return TorchServe's /ping URL, on the loopback address when the listeners bind to every address."""
    host = "127.0.0.1" if config.address in ("0.0.0.0", "::") else config.address
    return f"http://{host}:{config.inference_port}/ping"


def run_torchserve(args: argparse.Namespace) -> int:
    """Serve TorchServe on fixed ports until SIGTERM or SIGINT, then stop it."""
    from model_store.torchserve import KEY_FILE_NAME, TorchServe

    config = server_config(args, free_ports=False)
    if args.dry_run:
        return print_plan({"command": "torchserve", "work_dir": str(args.work_dir), "config_properties": config.render()})

    stop_on_sigterm()
    torchserve = TorchServe(config, work_dir=args.work_dir)
    record_healthcheck(args.work_dir, ping_url(config), torchserve.work_dir / KEY_FILE_NAME if config.token_auth else None)
    torchserve.start(timeout_s=args.start_timeout)
    try:
        logger.info("TorchServe ready: inference %s, management %s", config.inference_url, config.management_url)
        wait_for_stop()
    finally:
        torchserve.stop()
    return 0


# --- Facade --------------------------------------------------------------------------------


def price_fields_override(model_store: Path) -> dict[str, str]:
    """Return {"FPS_PRICE_FIELDS": ...} from the price archive's manifest, or {} when the variable is set or there is no archive.

    The facade sends only the fields that the served price model takes, and the
    archive's manifest lists them. An explicit FPS_PRICE_FIELDS takes precedence.
    """
    archive = model_store / PRICE_ARCHIVE
    if os.environ.get("FPS_PRICE_FIELDS") or not archive.is_file():
        return {}
    from frontend_api.archives import price_fields_from_archive

    return {"FPS_PRICE_FIELDS": ",".join(price_fields_from_archive(archive))}


def run_facade(args: argparse.Namespace) -> int:
    """Replace this process with `python -m frontend_api run`, configured by the FPS_ variables."""
    command = [sys.executable, "-m", "frontend_api", "run"]
    overrides = price_fields_override(args.model_store)
    if args.dry_run:
        return print_plan({"command": "facade", "exec": command, "environment": overrides})

    record_healthcheck(args.work_dir, facade_readyz_url())
    os.environ.update(overrides)
    os.chdir(REPO_ROOT)
    os.execv(sys.executable, command)
    return 1  # not reached: execv replaces the process or raises OSError


# --- TorchServe and facade -----------------------------------------------------------------


def run_all(args: argparse.Namespace) -> int:
    """Start TorchServe on free ports, then serve the facade in front of it until SIGTERM or SIGINT."""
    from model_store.torchserve import TorchServe

    config = server_config(args, free_ports=True)
    overrides = price_fields_override(args.model_store)
    if args.dry_run:
        return print_plan(
            {
                "command": "all",
                "work_dir": str(args.work_dir),
                "config_properties": config.render(),
                "facade_environment": overrides,
            }
        )

    os.environ.update(overrides)
    stop_on_sigterm()
    record_healthcheck(args.work_dir, facade_readyz_url())
    torchserve = TorchServe(config, work_dir=args.work_dir)
    torchserve.start(timeout_s=args.start_timeout)
    try:
        serve_facade(torchserve)
    except KeyboardInterrupt:
        logger.info("Interrupted; stopping")
    finally:
        torchserve.stop()
    return 0


def serve_facade(torchserve) -> None:
    """Run the facade in this process against `torchserve`, until uvicorn shuts down."""
    from pydantic import SecretStr

    from frontend_api.logs import configure_logging
    from frontend_api.settings import Settings
    from frontend_api.stack import run_facade as run_uvicorn

    def secret(key: str | None) -> SecretStr | None:
        return None if key is None else SecretStr(key)

    settings = Settings(
        torchserve_inference_url=torchserve.inference_url,
        torchserve_management_url=torchserve.management_url,
        torchserve_inference_key=secret(torchserve.inference_key),
        torchserve_management_key=secret(torchserve.management_key),
    )
    configure_logging(settings.log_level, settings.log_format)
    run_uvicorn(settings, on_started=lambda url: logger.info("Facade listening on %s", url))


# --- Signals -------------------------------------------------------------------------------


def stop_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so the `finally` blocks stop TorchServe on `docker stop`.

    uvicorn handles SIGTERM itself while it serves and raises it again after its
    graceful shutdown, which then lands here.
    """

    def raise_system_exit(signum, frame) -> None:
        logger.info("Received signal %d; stopping", signum)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, raise_system_exit)


def wait_for_stop() -> None:
    """Block until SIGTERM (SystemExit via stop_on_sigterm) or SIGINT (KeyboardInterrupt)."""
    try:
        while True:
            signal.pause()
    except KeyboardInterrupt:
        logger.info("Interrupted; stopping")


# --- Health check --------------------------------------------------------------------------

HEALTHCHECK_FILE = "healthcheck.json"


def facade_readyz_url() -> str:
    """Return the facade's /readyz on the loopback address and FPS_PORT."""
    return f"http://127.0.0.1:{env_default('FPS_PORT', '8000')}/readyz"


def record_healthcheck(work_dir: Path, url: str, key_file: Path | None = None) -> None:
    """Record in `work_dir` what `healthcheck` checks: the URL and, with token authorization, TorchServe's key file.

    The image has one HEALTHCHECK for every command, so the running command records
    which server it started.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    target = {"url": url, "key_file": None if key_file is None else str(key_file)}
    (work_dir / HEALTHCHECK_FILE).write_text(json.dumps(target), encoding="utf-8")


def healthcheck_target(args: argparse.Namespace) -> tuple[str, dict[str, str]]:
    """Return the URL and headers to check: --url, else the recorded target, else the facade's /readyz."""
    if args.url:
        return args.url, {}
    recorded = args.work_dir / HEALTHCHECK_FILE
    if not recorded.is_file():
        return facade_readyz_url(), {}

    target = json.loads(recorded.read_text(encoding="utf-8"))
    headers = {}
    if target.get("key_file"):
        keys = json.loads(Path(target["key_file"]).read_text(encoding="utf-8"))
        headers["Authorization"] = f"Bearer {keys['inference']['key']}"
    return target["url"], headers


def run_healthcheck(args: argparse.Namespace) -> int:
    """GET the target and return exit code 0 on status 200, or 1 on any other status, a timeout, a refused connection or a missing key."""
    try:
        url, headers = healthcheck_target(args)
    except (OSError, ValueError, KeyError) as error:
        print(f"unhealthy: cannot read the health check target or key: {error!r}", file=sys.stderr)
        return 1

    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=HEALTHCHECK_TIMEOUT_S) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        print(f"unhealthy: GET {url} failed: {error}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: GET {url} returned {status}", file=sys.stderr)
        return 1
    return 0


# --- Demo models ---------------------------------------------------------------------------


def run_build_demo_models(args: argparse.Namespace) -> int:
    """Train the demo models on the bundled sample, export them and pack both archives into --out."""
    if args.dry_run:
        return print_plan(
            {"command": "build-demo-models", "out": str(args.out), "profile": args.profile, "work_dir": str(args.work_dir)}
        )
    from frontend_api.model_build import build_demo_archives

    build_demo_archives(args.work_dir, args.out, args.profile)
    return 0


def print_plan(plan: dict) -> int:
    """Print a dry run's plan as JSON and return exit code 0."""
    print(json.dumps(plan, indent=2, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args = build_parser().parse_args(argv)
    except ValueError as error:
        print(f"entrypoint.py: error: {error}", file=sys.stderr)
        return 2

    try:
        return args.handler(args)
    except (ValueError, OSError, RuntimeError) as error:
        # Invalid settings, a missing file, or TorchServe failing to start (TorchServeError,
        # whose message contains the log tail) get one log line instead of a traceback.
        logger.error("%s failed: %s", args.command, error)
        return 1


if __name__ == "__main__":
    sys.exit(main())
