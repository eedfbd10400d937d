"""Command line for the training pipelines: sample, classifier, compare and price.

Run `python -m training COMMAND --help` for the options of each command.
"""

import argparse
import importlib
import json
import logging
import sys
from dataclasses import fields
from pathlib import Path

from training.classifier import PROFILES, ClassifierConfig, compare_runs, train_classifier
from training.data import DATA_ROOT_ENV, resolve_data_root
from training.engine import OPTIMIZERS, SCHEDULES
from training.labels import PRODUCT_GROUPS
from training.models import ARCHITECTURES, RESNET_TRAINABLE_ORDER
from training.sample import SampleConfig, cut_sample

DATA_ROOT_HELP = f"data root that holds hm/ (default: ${DATA_ROOT_ENV}, else ../shared/data beside the repository)"
PRICE_CLI_MODULE = "training.price.cli"


def add_sample_command(subparsers) -> None:
    parser = subparsers.add_parser("sample", help="cut the small real sample that the repository ships")
    parser.add_argument("--source", default=None, help=f"data root of the full data set (default: ${DATA_ROOT_ENV}, else ../shared/data beside the repository)")
    parser.add_argument("--dest", default="training/sample", help="folder to write the sample to; its hm/, fashion_products/ and mercari/ are replaced (default: %(default)s)")
    parser.add_argument("--photos-per-class", type=int, default=30, help="photos per product group, taken as whole products (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the choice of products and rows (default: %(default)s)")
    parser.set_defaults(handler=run_sample)


def run_sample(args) -> int:
    config = SampleConfig(source=resolve_data_root(args.source), dest=Path(args.dest), photos_per_class=args.photos_per_class, seed=args.seed)
    print(json.dumps(cut_sample(config), indent=2))
    return 0


def _profile_help() -> str:
    parts = [f"{name}: " + ", ".join(f"{key}={value}" for key, value in settings.items()) for name, settings in PROFILES.items()]
    return "preset for the settings below that you do not pass (" + "; ".join(parts) + "). quick is sized for a 2-core CPU, full for a GPU"


def add_classifier_command(subparsers) -> None:
    # Options default to None, so that a profile or the ClassifierConfig default fills
    # in only what the caller did not pass. The help shows the config default.
    defaults = ClassifierConfig()
    parser = subparsers.add_parser("classifier", help="train the product-group image classifier")
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None, help=_profile_help())
    parser.add_argument("--out", dest="out_dir", default=None, help="run folder for model.pt, metrics.json and plots [default: runs/ARCH]")

    data = parser.add_argument_group("data")
    data.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    data.add_argument(
        "--labels", choices=("default", "all"), default="default",
        help=f"default: the {len(PRODUCT_GROUPS)} product groups in training/labels.py; all: every group with at least --min-class-count images",
    )
    data.add_argument("--min-class-count", type=int, default=None, help=f"rare-class filter: drop classes with fewer images [default: {defaults.min_class_count}]")
    data.add_argument("--class-cap", type=int, default=None, help=f"undersample larger classes to this many images, seeded [default: {defaults.class_cap}]")
    data.add_argument("--val-fraction", type=float, default=None, help=f"share of products in the validation split [default: {defaults.val_fraction}]")
    data.add_argument("--image-size", type=int, default=None, metavar="PIXELS", help=f"input side in pixels; photos are resized to a square [default: {defaults.image_size}]")
    data.add_argument("--workers", dest="num_workers", type=int, default=None, help="DataLoader worker processes [default: one per CPU core but one, at most 8]")

    model = parser.add_argument_group("model")
    model.add_argument("--arch", choices=ARCHITECTURES, default=None, help=f"network architecture [default: {defaults.arch}]")
    model.add_argument(
        "--weights", default=None,
        help="ResNet50 start weights: none (random), imagenet (torchvision download, needs internet) or PATH to a local .pth file [default: none]",
    )
    model.add_argument(
        "--trainable-layers", type=int, default=None,
        help=f"ResNet50 blocks to train, counted from the head: 1 = {RESNET_TRAINABLE_ORDER[0]} only, 2 = + {RESNET_TRAINABLE_ORDER[1]}, ..., "
        f"{len(RESNET_TRAINABLE_ORDER)} = all [default: {defaults.trainable_layers}]",
    )

    optimisation = parser.add_argument_group("optimisation")
    optimisation.add_argument("--epochs", type=int, default=None, help=f"maximum number of passes over the training split [default: {defaults.epochs}]")
    optimisation.add_argument("--batch-size", type=int, default=None, help=f"images per batch [default: {defaults.batch_size}]")
    optimisation.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help=f"optimizer; sgd uses Nesterov momentum [default: {defaults.optimizer}]")
    optimisation.add_argument("--lr", dest="learning_rate", type=float, default=None, help=f"peak learning rate [default: {defaults.learning_rate}]")
    optimisation.add_argument("--weight-decay", type=float, default=None, help=f"decoupled (AdamW) or L2 (SGD) weight decay [default: {defaults.weight_decay}]")
    optimisation.add_argument("--momentum", type=float, default=None, help=f"SGD momentum [default: {defaults.momentum}]")
    optimisation.add_argument("--schedule", choices=SCHEDULES, default=None, help=f"learning-rate schedule, stepped per batch [default: {defaults.schedule}]")
    optimisation.add_argument("--patience", type=int, default=None, help=f"epochs without a better validation accuracy before early stopping [default: {defaults.patience}]")

    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=None, help=f"random seed for the class cap, split, initial weights and batch order [default: {defaults.seed}]")
    run.add_argument("--device", default=None, help="auto (CUDA when present), cpu, cuda or cuda:N [default: auto]")
    run.add_argument("--max-train-batches", type=int, default=None, help="stop each training epoch after this many batches, for smoke runs [default: no limit]")
    run.add_argument(
        "--time-limit", dest="time_limit_minutes", type=float, default=None, metavar="MINUTES",
        help="wall-clock budget for training in minutes; the epoch in progress ends early, is evaluated and training stops [default: no limit]",
    )
    parser.set_defaults(handler=run_classifier)


def classifier_config_from_args(args) -> ClassifierConfig:
    """Merge the parsed options over the profile's settings over the config defaults."""
    settings = dict(PROFILES[args.profile]) if args.profile else {}
    config_fields = {item.name for item in fields(ClassifierConfig)}
    for name, value in vars(args).items():
        if name in config_fields and value is not None and name != "labels":
            settings[name] = value
    settings["labels"] = None if args.labels == "all" else PRODUCT_GROUPS
    settings["profile"] = args.profile
    settings.setdefault("out_dir", Path("runs") / settings.get("arch", ClassifierConfig.arch))
    return ClassifierConfig(**settings)


def run_classifier(args) -> int:
    run_dir = train_classifier(classifier_config_from_args(args))
    print(run_dir)
    return 0


def add_compare_command(subparsers) -> None:
    parser = subparsers.add_parser("compare", help="plot several classifier runs' training loss and validation accuracy in one figure")
    parser.add_argument("runs", nargs="+", help="run folders written by the classifier command")
    parser.add_argument("--out", default="runs/compare.png", help="PNG file to write (default: %(default)s)")
    parser.set_defaults(handler=run_compare)


def run_compare(args) -> int:
    print(compare_runs([Path(run) for run in args.runs], Path(args.out)))
    return 0


def add_price_command(subparsers) -> None:
    # The price pipeline lives in its own package; it is imported only when present,
    # so the other commands work without it.
    try:
        price_cli = importlib.import_module(PRICE_CLI_MODULE)
    except ModuleNotFoundError as error:
        if error.name not in (PRICE_CLI_MODULE, "training.price"):
            raise
        parser = subparsers.add_parser("price", help="train the price model (not installed: training/price/cli.py is missing)")
        parser.set_defaults(handler=lambda args: _price_missing())
        return
    parser = subparsers.add_parser("price", help="train the price model")
    price_cli.add_arguments(parser)
    parser.set_defaults(handler=price_cli.run)


def _price_missing() -> int:
    print(f"the price command needs the module {PRICE_CLI_MODULE}, which is not in this checkout", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    """Build the parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_sample_command(subparsers)
    add_classifier_command(subparsers)
    add_compare_command(subparsers)
    add_price_command(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
