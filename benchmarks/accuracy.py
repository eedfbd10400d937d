"""Top-1 accuracy and macro-F1 of ONNX classifiers on the training run's validation split.

The split is rebuilt from the run's metrics.json (label set, class filter, cap,
validation fraction, seed), so the photos are the ones training held out. The same
split gives the INT8 export its calibration photos from the training side.
"""

import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image
from sklearn.metrics import f1_score

from training.labels import PRODUCT_GROUPS
from training.transforms import eval_transform

logger = logging.getLogger(__name__)

# Photos preprocessed and run per step: enough to batch, small enough to keep memory low.
CHUNK_SIZE = 32


def split_tables(run_dir: Path | None, data_root: Path):
    """Rebuild a run's train and validation tables (path, label, target) and its label list.

    The settings come from the run's metrics.json config. A run without metrics.json
    (the randomly initialised stand-in) gets the training defaults: the nine product
    groups, at least 100 photos per class, a cap of 8,000, one fifth held out, seed 0.
    """
    # Imported here because only the accuracy and calibration steps read the training data.
    from training.data import grouped_split, load_labelled_images

    config = {}
    metrics_path = Path(run_dir) / "metrics.json" if run_dir is not None else None
    if metrics_path is not None and metrics_path.is_file():
        config = json.loads(metrics_path.read_text()).get("config", {})
    else:
        logger.info("no metrics.json in %s; using the training defaults for the split", run_dir)

    labels = config.get("labels", list(PRODUCT_GROUPS))
    seed = config.get("seed", 0)
    data = load_labelled_images(
        Path(data_root) / "hm",
        tuple(labels) if labels is not None else None,
        config.get("min_class_count", 100),
        config.get("class_cap", 8000),
        seed,
    )
    train_table, val_table = grouped_split(data.table, config.get("val_fraction", 0.2), seed)
    return train_table, val_table, data.labels


def _load_chunk(paths: list[str], image_size: int) -> np.ndarray:
    transform = eval_transform(image_size)
    tensors = []
    for path in paths:
        with Image.open(path) as image:
            tensors.append(transform(image.convert("RGB")).numpy())
    return np.stack(tensors)


def evaluate_sessions(
    sessions: dict[str, ort.InferenceSession], paths: list[str], targets: list[int], image_size: int, limit: int | None = None
) -> dict[str, dict]:
    """Score every session on the same photos; each photo is preprocessed once for all sessions.

    Returns {name: {"images", "top1", "macro_f1"}}. `limit` keeps an evenly spaced
    subset of that many photos, to bound the time on a slow machine.
    """
    if limit is not None and len(paths) > limit:
        chosen = np.linspace(0, len(paths) - 1, limit).round().astype(int)
        paths = [paths[i] for i in chosen]
        targets = [targets[i] for i in chosen]
    if not paths:
        raise ValueError("no validation photos to score; check the data root and the run's label set")

    predictions: dict[str, list[int]] = {name: [] for name in sessions}
    for start in range(0, len(paths), CHUNK_SIZE):
        batch = _load_chunk(paths[start : start + CHUNK_SIZE], image_size)
        for name, session in sessions.items():
            probabilities = session.run(None, {session.get_inputs()[0].name: batch})[0]
            predictions[name].extend(probabilities.argmax(axis=1).tolist())

    results = {}
    for name, predicted in predictions.items():
        top1 = float(np.mean(np.asarray(predicted) == np.asarray(targets)))
        macro_f1 = float(f1_score(targets, predicted, average="macro", zero_division=0))
        results[name] = {"images": len(paths), "top1": top1, "macro_f1": macro_f1}
        logger.info("%s on %d validation photos: top-1 %.4f, macro-F1 %.4f", name, len(paths), top1, macro_f1)
    return results
