"""Command-line options of `python -m training price`."""

import argparse
import json
from pathlib import Path

from training.data import DATA_ROOT_ENV
from training.price.adapters import DATASETS
from training.price.pipeline import CANDIDATES, DEFAULT_CANDIDATES
from training.price.train import METRICS_NAME, train_price_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the price training options to `parser`."""
    parser.add_argument("--dataset", choices=DATASETS, required=True, help="data set to train on: H&M articles, the Myntra catalogue (INR) or Mercari listings (USD)")
    parser.add_argument("--data-root", default=None, help=f"data root that holds hm/, fashion_products/ and mercari/ (default: ${DATA_ROOT_ENV}, else ../shared/data beside the repository)")
    parser.add_argument("--out", dest="out_dir", default=None, help="run folder for price_model.joblib, schema.json, metrics.json and the plot (default: runs/price-DATASET)")
    parser.add_argument(
        "--regressors", nargs="+", choices=list(CANDIDATES), default=list(DEFAULT_CANDIDATES), metavar="NAME",
        help=f"candidate regressors, compared on a grouped split of the training rows; the best is kept. Choices: {', '.join(CANDIDATES)} (default: all)",
    )  # fmt: skip
    parser.add_argument("--val-fraction", type=float, default=0.2, help="share of product groups held out for validation (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the splits and the regressors (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Train the price model with the parsed options and print the run folder and its validation metrics."""
    out_dir = train_price_model(
        args.dataset,
        data_root=args.data_root,
        out_dir=args.out_dir,
        candidates=args.regressors,
        val_fraction=args.val_fraction,
        seed=args.seed,
    )
    metrics = json.loads((Path(out_dir) / METRICS_NAME).read_text())
    print(json.dumps({"run": str(out_dir), "regressor": metrics["regressor"], "validation": metrics["validation"]}, indent=2))
    return 0
