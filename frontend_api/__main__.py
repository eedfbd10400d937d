"""Command line: run the facade alone, or the whole stack (models, TorchServe and facade).

    python -m frontend_api run      # the facade only, configured by FPS_ variables
    python -m frontend_api stack    # build models if needed, start TorchServe and the facade
"""

import argparse
import sys

import uvicorn

from frontend_api import stack
from frontend_api.app import create_app
from frontend_api.logs import configure_logging
from frontend_api.settings import Settings


def run_facade(args: argparse.Namespace) -> int:
    """Serve the facade with uvicorn until interrupted."""
    overrides = {key: value for key, value in (("host", args.host), ("port", args.port)) if value is not None}
    settings = Settings(**overrides)
    configure_logging(settings.log_level, settings.log_format)
    # log_config=None keeps the logging set up above instead of uvicorn's default one.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m frontend_api", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")

    run = commands.add_parser("run", help="run the facade only (TorchServe must be running)")
    run.add_argument("--host", help="address to listen on (default: FPS_HOST or 127.0.0.1)")
    run.add_argument("--port", type=int, help="port to listen on, 0 for a free one (default: FPS_PORT or 8000)")
    run.set_defaults(handler=run_facade)

    stack_parser = commands.add_parser(
        "stack", help="build the models if model_store/ has no archives, then start TorchServe and the facade"
    )
    stack.add_arguments(stack_parser)
    stack_parser.set_defaults(handler=stack.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        args = build_parser().parse_args(["run", *(argv if argv is not None else sys.argv[1:])])
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
