"""Training of the price model: split, candidate selection, final fit, metrics and run folder.

The data set is split once into training and validation rows, grouped so that rows
of one product stay on one side. The candidates are compared on a second grouped
split inside the training rows, the best one is refitted on all training rows, and
only then is it scored on the validation rows, next to the median baselines. So the
reported validation metrics took no part in choosing the regressor.

A run folder holds:

    price_model.joblib   the fitted scikit-learn Pipeline (read by export, never by a server)
    schema.json          dataset, input fields and target (see PriceDataset.schema)
    metrics.json         split sizes, selection scores, validation metrics and baselines, timings
    price_scatter.png    predicted against true validation prices
"""

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import joblib
import numpy as np
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import Pipeline

from training.data import resolve_data_root
from training.price.adapters import PriceDataset, load_price_dataset
from training.price.metrics import global_median_baseline, group_median_baseline, price_metrics
from training.price.pipeline import CANDIDATES, DEFAULT_CANDIDATES, build_pipeline
from training.price.plots import plot_price_scatter

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RUNS_DIR = REPO_ROOT / "runs"

PIPELINE_NAME = "price_model.joblib"
SCHEMA_NAME = "schema.json"
METRICS_NAME = "metrics.json"
SCATTER_NAME = "price_scatter.png"


def grouped_split(groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split row positions into (remaining, held out) so that no group is on both sides.

    `fraction` is the share of groups held out, which is close to the share of rows
    when groups are small.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be between 0 and 1, got {fraction}")

    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    remaining, held_out = next(splitter.split(np.zeros(len(groups)), groups=groups))
    return remaining, held_out


def fit_pipeline(data: PriceDataset, rows: np.ndarray, candidate: str, seed: int) -> Pipeline:
    """Fit the pipeline of `candidate` on the given rows of `data`, with log1p(price) as the target."""
    pipeline = build_pipeline(data.fields, candidate, seed=seed)
    pipeline.fit(data.features.iloc[rows], np.log1p(data.price[rows]))
    return pipeline


def predict_price(pipeline: Pipeline, features) -> np.ndarray:
    """Predict prices in the data set's unit: expm1 of the pipeline's log1p(price) output."""
    return np.expm1(pipeline.predict(features))


def select_candidate(data: PriceDataset, train_rows: np.ndarray, candidates: Sequence[str], fraction: float, seed: int) -> tuple[str, dict]:
    """Compare the candidates on a grouped split of the training rows; return the best name and every score.

    The score is rmse_log on the held-out part. With a single candidate nothing is
    compared and the scores are empty.
    """
    if len(candidates) == 1:
        return candidates[0], {}

    fit_part, check_part = grouped_split(data.groups[train_rows], fraction, seed + 1)
    fit_rows, check_rows = train_rows[fit_part], train_rows[check_part]
    floor = float(data.price[fit_rows].min())

    scores = {}
    for name in candidates:
        started = time.perf_counter()
        pipeline = fit_pipeline(data, fit_rows, name, seed)
        predicted = predict_price(pipeline, data.features.iloc[check_rows])
        scores[name] = {
            **price_metrics(data.price[check_rows], predicted, floor),
            "fit_seconds": round(time.perf_counter() - started, 2),
        }
        logger.info("selection: %-10s rmse_log %.4f (%.1f s)", name, scores[name]["rmse_log"], scores[name]["fit_seconds"])

    best = min(scores, key=lambda name: scores[name]["rmse_log"])
    return best, scores


def evaluate(data: PriceDataset, pipeline: Pipeline, train_rows: np.ndarray, val_rows: np.ndarray) -> tuple[dict, np.ndarray]:
    """Score the model and both median baselines on the validation rows; also return the model's predictions."""
    train_price, val_price = data.price[train_rows], data.price[val_rows]
    floor = float(train_price.min())
    type_field = data.product_type_field

    predicted = predict_price(pipeline, data.features.iloc[val_rows])
    global_median = global_median_baseline(train_price, len(val_rows))
    type_median = group_median_baseline(
        data.features[type_field].iloc[train_rows], train_price, data.features[type_field].iloc[val_rows]
    )

    scores = {
        "model": price_metrics(val_price, predicted, floor),
        "global_median": price_metrics(val_price, global_median, floor),
        f"{type_field}_median": price_metrics(val_price, type_median, floor),
    }
    return scores, predicted


def _feature_count(pipeline: Pipeline) -> int:
    return len(pipeline.named_steps["features"].get_feature_names_out())


def train_price_model(
    dataset: str,
    data_root: Path | str | None = None,
    out_dir: Path | str | None = None,
    candidates: Sequence[str] = DEFAULT_CANDIDATES,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> Path:
    """Train the price model of `dataset` and write its run folder; returns the run folder.

    `data_root` defaults to $FPS_DATA_ROOT, else ../shared/data beside the repository,
    and `out_dir` to runs/price-DATASET. `candidates` are keys of CANDIDATES.
    """
    unknown = [name for name in candidates if name not in CANDIDATES]
    if unknown or not candidates:
        raise ValueError(f"invalid regressors {list(candidates)}; choose one or more of {', '.join(CANDIDATES)}")

    started = time.perf_counter()
    out_dir = Path(out_dir) if out_dir is not None else DEFAULT_RUNS_DIR / f"price-{dataset}"
    data = load_price_dataset(dataset, resolve_data_root(data_root))
    loaded = time.perf_counter()

    train_rows, val_rows = grouped_split(data.groups, val_fraction, seed)
    logger.info("%s: %d training rows, %d validation rows, grouped by %s", dataset, len(train_rows), len(val_rows), data.group_description)

    best, selection_scores = select_candidate(data, train_rows, list(candidates), val_fraction, seed)
    selected = time.perf_counter()

    pipeline = fit_pipeline(data, train_rows, best, seed)
    fitted = time.perf_counter()

    scores, predicted = evaluate(data, pipeline, train_rows, val_rows)
    baseline_key = f"{data.product_type_field}_median"
    reduction = 1.0 - scores["model"]["rmse_log"] / scores[baseline_key]["rmse_log"]
    logger.info(
        "%s: %s validation rmse_log %.4f, rmsle %.4f, mdape %.3f; %s baseline rmse_log %.4f (%.1f%% lower)",
        dataset, best, scores["model"]["rmse_log"], scores["model"]["rmsle"], scores["model"]["mdape"],
        baseline_key, scores[baseline_key]["rmse_log"], 100 * reduction,
    )  # fmt: skip

    metrics = {
        "dataset": dataset,
        "target": data.target.to_dict(),
        "rows": {"with_price": len(data.features), "skipped": data.skipped_rows, "train": len(train_rows), "validation": len(val_rows)},
        "split": {"grouped_by": data.group_description, "val_fraction": val_fraction, "seed": seed},
        "selection": {
            "split": f"grouped split of the training rows, {val_fraction:g} held out, seed {seed + 1}",
            "scores": selection_scores,
            "best": best,
        },
        "regressor": best,
        "regressor_description": CANDIDATES[best].description,
        "feature_count": _feature_count(pipeline),
        "validation": scores,
        f"rmse_log_reduction_vs_{baseline_key}": reduction,
        "seconds": {
            "load": round(loaded - started, 2),
            "selection": round(selected - loaded, 2),
            "final_fit": round(fitted - selected, 2),
            "total": round(time.perf_counter() - started, 2),
        },
    }
    write_run(out_dir, data, pipeline, metrics, val_rows, predicted)
    return out_dir


def write_run(out_dir: Path, data: PriceDataset, pipeline: Pipeline, metrics: dict, val_rows: np.ndarray, predicted: np.ndarray) -> None:
    """Write the pipeline, schema.json, metrics.json and the scatter plot into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, out_dir / PIPELINE_NAME)
    (out_dir / SCHEMA_NAME).write_text(json.dumps(data.schema(), indent=2) + "\n")
    (out_dir / METRICS_NAME).write_text(json.dumps(metrics, indent=2) + "\n")

    model = metrics["validation"]["model"]
    title = f"{data.name}: {metrics['regressor']}, validation rmse_log {model['rmse_log']:.3f}"
    plot_price_scatter(data.price[val_rows], predicted, out_dir / SCATTER_NAME, title=title, unit=data.target.unit)
    logger.info("wrote price run to %s", out_dir)
