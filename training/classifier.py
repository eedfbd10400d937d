"""Train the product-group image classifier and write its run folder.

A run folder contains model.pt (the best epoch by validation accuracy), metrics.json
and PNG plots. `train_classifier(ClassifierConfig(...))` is the public entry point;
`python -m training classifier --help` wraps it.
"""

import json
import logging
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support
from torch import nn
from torch.utils.data import DataLoader

from training import plots
from training.checkpoint import CHECKPOINT_NAME, save_checkpoint
from training.data import (
    DEFAULT_CLASS_CAP,
    DEFAULT_MIN_CLASS_COUNT,
    LabelledImages,
    class_weights,
    grouped_split,
    load_labelled_images,
    resolve_data_root,
)
from training.engine import OPTIMIZERS, SCHEDULES, EarlyStopping, Evaluation, build_optimizer, build_scheduler, evaluate, prepare_model, train_one_epoch
from training.labels import PRODUCT_GROUPS
from training.models import ARCHITECTURES, build_model
from training.photo_dataset import PhotoDataset
from training.transforms import eval_transform, train_transform

logger = logging.getLogger(__name__)

METRICS_NAME = "metrics.json"
PREDICTION_GRID_SIZE = 24

# Settings that a profile fills in unless the caller sets them. quick is sized for a
# 2-core CPU. On a shared 2-core AMD EPYC VM, one training step on 64 images of 64 px
# took about 1 s for SimpleCNN and 10-14 s for ResNet50. It took several times longer
# while other jobs ran. full is the 224 px setting for a GPU.
PROFILES: dict[str, dict] = {
    "quick": {"image_size": 64, "epochs": 4, "batch_size": 64, "class_cap": 600, "patience": 2},
    "full": {"image_size": 224, "epochs": 25, "batch_size": 64, "class_cap": DEFAULT_CLASS_CAP, "patience": 5},
}


@dataclass
class ClassifierConfig:
    """Settings of one classifier training run."""

    out_dir: Path = Path("runs/classifier")
    data_root: Path | None = None  # folder containing hm/; None resolves $FPS_DATA_ROOT or ../shared/data
    arch: str = "simplecnn"
    weights: str = "none"  # "none", "imagenet" or a local .pth file (ResNet50 only)
    trainable_layers: int = 6  # ResNet50 blocks trained, from the head back: 1 = head only, 6 = all
    image_size: int = 224  # pixels, square
    epochs: int = 20
    batch_size: int = 32
    optimizer: str = "adamw"
    learning_rate: float = 1e-3  # peak rate; the schedule lowers it per batch
    weight_decay: float = 1e-2
    momentum: float = 0.9  # SGD only
    schedule: str = "cosine"
    patience: int = 5  # epochs without a better validation accuracy before stopping
    labels: tuple[str, ...] | None = PRODUCT_GROUPS  # None keeps every product group with enough images
    min_class_count: int = DEFAULT_MIN_CLASS_COUNT
    class_cap: int = DEFAULT_CLASS_CAP
    val_fraction: float = 0.2
    seed: int = 0
    num_workers: int | None = None  # DataLoader worker processes; None uses one per core but one, at most 8
    device: str = "auto"  # "auto" picks CUDA when present
    max_train_batches: int | None = None  # stop each epoch early, for smoke tests
    # Wall-clock budget for the training epochs, in minutes: the epoch in progress
    # ends at the first batch past it, is evaluated, and training stops.
    time_limit_minutes: float | None = None
    profile: str | None = None  # name of the profile the CLI applied, stored for the record

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.epochs < 1 or self.batch_size < 1 or self.image_size < 16:
            raise ValueError(f"epochs and batch_size must be >= 1 and image_size >= 16, got {self.epochs}, {self.batch_size}, {self.image_size}")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch, so a run on the same hardware repeats its choices."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    """Return CUDA for "auto" when a GPU is present, else the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but torch.cuda.is_available() is False; use --device cpu or auto")
    return torch.device(name)


def default_workers() -> int:
    """Return one DataLoader worker per core but one, at most 8, because the main process trains."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def make_loaders(data: LabelledImages, config: ClassifierConfig, device: torch.device) -> tuple[DataLoader, DataLoader, dict]:
    """Split the images by product and build the train and validation loaders."""
    train_table, val_table = grouped_split(data.table, config.val_fraction, config.seed)
    workers = default_workers() if config.num_workers is None else config.num_workers
    common = {"num_workers": workers, "pin_memory": device.type == "cuda", "persistent_workers": workers > 0}

    train_set = PhotoDataset(train_table["path"], train_table["target"], train_transform(config.image_size))
    val_set = PhotoDataset(val_table["path"], val_table["target"], eval_transform(config.image_size))
    generator = torch.Generator().manual_seed(config.seed)
    train_loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, drop_last=len(train_set) > config.batch_size, generator=generator, **common)
    val_loader = DataLoader(val_set, batch_size=config.batch_size, shuffle=False, **common)

    split_counts = {
        "train": {label: int((train_table["label"] == label).sum()) for label in data.labels},
        "val": {label: int((val_table["label"] == label).sum()) for label in data.labels},
    }
    return train_loader, val_loader, split_counts


def summarise(evaluation: Evaluation, labels: list[str]) -> dict:
    """Compute accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix."""
    classes = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(evaluation.targets, evaluation.predictions, labels=classes, zero_division=0)
    return {
        "val_loss": evaluation.loss,
        "val_accuracy": float(accuracy_score(evaluation.targets, evaluation.predictions)),
        "val_macro_f1": float(f1_score(evaluation.targets, evaluation.predictions, labels=classes, average="macro", zero_division=0)),
        "per_class": {
            label: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
            for i, label in enumerate(labels)
        },
        "confusion_matrix": confusion_matrix(evaluation.targets, evaluation.predictions, labels=classes).tolist(),
    }


def _pick_grid_examples(evaluation: Evaluation, seed: int) -> np.ndarray:
    """Choose validation indices for the prediction grid: half right, half wrong where possible."""
    rng = np.random.default_rng(seed)
    right = np.flatnonzero(evaluation.predictions == evaluation.targets)
    wrong = np.flatnonzero(evaluation.predictions != evaluation.targets)
    wrong_count = min(len(wrong), PREDICTION_GRID_SIZE // 2)
    right_count = min(len(right), PREDICTION_GRID_SIZE - wrong_count)
    chosen = np.concatenate([rng.choice(right, right_count, replace=False), rng.choice(wrong, wrong_count, replace=False)])
    return np.sort(chosen).astype(int)


def write_plots(out_dir: Path, data: LabelledImages, epochs: list[dict], final: dict, evaluation: Evaluation, val_paths: list[str], title: str, seed: int) -> None:
    """Write the run's PNG plots next to its metrics."""
    plots.plot_class_distribution(data.counts_before_filter, data.counts_after_filter, out_dir / "class_distribution.png")
    plots.plot_training_curves(epochs, out_dir / "training_curves.png", title=title)
    plots.plot_confusion_matrix(np.array(final["confusion_matrix"]), data.labels, out_dir / "confusion_matrix.png")

    chosen = _pick_grid_examples(evaluation, seed)
    plots.plot_prediction_grid(
        [val_paths[i] for i in chosen],
        evaluation.targets[chosen].tolist(),
        evaluation.predictions[chosen].tolist(),
        data.labels,
        out_dir / "val_predictions.png",
    )


def _log_epoch(row: dict, epochs: int) -> None:
    logger.info(
        "epoch %d/%d: train loss %.4f, val loss %.4f, val accuracy %.4f, val macro-F1 %.4f (%.0f s)",
        row["epoch"], epochs, row["train_loss"], row["val_loss"], row["val_accuracy"], row["val_macro_f1"], row["seconds"],
    )


@dataclass
class FitResult:
    """Outcome of the epoch loop, besides model.pt."""

    epochs: list[dict]  # one row of losses and scores per epoch
    best_epoch: int
    best_evaluation: Evaluation  # validation predictions of the best epoch
    best_scores: dict  # summarise() of the best epoch
    stop_reason: str  # "epochs done", "early stopping" or "time limit"
    batches_per_epoch: int  # training batches in a full epoch


def fit(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader, labels: list[str], config: ClassifierConfig, device: torch.device) -> FitResult:
    """Run the epochs, saving model.pt whenever validation accuracy improves."""
    weights = class_weights(train_loader.dataset.targets, len(labels))
    criterion = nn.CrossEntropyLoss(weight=torch.tensor(weights, device=device))
    optimizer = build_optimizer(model, config.optimizer, config.learning_rate, config.weight_decay, config.momentum)
    steps_per_epoch = len(train_loader) if config.max_train_batches is None else min(config.max_train_batches, len(train_loader))
    scheduler = build_scheduler(optimizer, config.schedule, steps_per_epoch * config.epochs)
    deadline = None if config.time_limit_minutes is None else time.monotonic() + 60 * config.time_limit_minutes

    epochs: list[dict] = []
    stopper = EarlyStopping(config.patience)
    stop_reason = "epochs done"
    for epoch in range(1, config.epochs + 1):
        epoch_started = time.perf_counter()
        description = f"epoch {epoch}/{config.epochs}"
        train_loss, train_batches = train_one_epoch(model, train_loader, criterion, optimizer, scheduler, device, f"{description} train", config.max_train_batches, deadline)
        evaluation = evaluate(model, val_loader, criterion, device, f"{description} val")
        scores = summarise(evaluation, labels)
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_batches": train_batches,  # fewer than batches_per_epoch when the time limit cut the epoch
            "val_loss": scores["val_loss"],
            "val_accuracy": scores["val_accuracy"],
            "val_macro_f1": scores["val_macro_f1"],
            "learning_rate": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - epoch_started,
        }
        epochs.append(row)
        _log_epoch(row, config.epochs)

        if stopper.improved(epoch, row["val_accuracy"]):
            best_evaluation, best_scores = evaluation, scores
            checkpoint_metrics = {key: row[key] for key in ("epoch", "val_accuracy", "val_macro_f1", "val_loss")}
            save_checkpoint(config.out_dir / CHECKPOINT_NAME, model, config.arch, labels, config.image_size, checkpoint_metrics)
        elif stopper.should_stop(epoch):
            logger.info("early stopping: no better validation accuracy since epoch %d", stopper.best_epoch)
            stop_reason = "early stopping"
            break

        if deadline is not None and time.monotonic() > deadline and epoch < config.epochs:
            # NOTE: the cosine schedule is sized for all epochs, so a run cut short
            # by the time limit ends before its learning rate has decayed.
            logger.warning("time limit of %.1f minutes reached in epoch %d; stopping", config.time_limit_minutes, epoch)
            stop_reason = "time limit"
            break

    return FitResult(epochs, stopper.best_epoch, best_evaluation, best_scores, stop_reason, steps_per_epoch)


def build_metrics(config: ClassifierConfig, data: LabelledImages, split_counts: dict, result: FitResult, device: torch.device, elapsed: float) -> dict:
    """Assemble metrics.json: settings, class counts, per-epoch rows and the best epoch's scores."""
    scores = result.best_scores
    return {
        "run": config.out_dir.name,
        "arch": config.arch,
        "weights": config.weights,
        "image_size": config.image_size,
        "device": str(device),
        "labels": data.labels,
        "class_counts": {"before_filter": data.counts_before_filter, "after_filter": data.counts_after_filter, **split_counts},
        "batches_per_epoch": result.batches_per_epoch,
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "stop_reason": result.stop_reason,
        "final": {key: scores[key] for key in ("val_loss", "val_accuracy", "val_macro_f1")},
        "per_class": scores["per_class"],
        "confusion_matrix": scores["confusion_matrix"],
        "elapsed_seconds": elapsed,
        "config": {key: (str(value) if isinstance(value, Path) else value) for key, value in asdict(config).items()},
    }


def train_classifier(config: ClassifierConfig) -> Path:
    """Train one classifier run and return its run folder.

    Keeps the epoch with the best validation accuracy in model.pt, stops after
    `patience` epochs without improvement (or at the time limit), and writes
    metrics.json and the plots. The reported final scores are the best epoch's,
    so they describe the file that export reads rather than the last epoch.
    """
    started = time.perf_counter()
    seed_everything(config.seed)
    device = pick_device(config.device)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    hm_root = resolve_data_root(config.data_root) / "hm"
    logger.info("classifier run %s: %s on %s, %d px, data %s", config.out_dir, config.arch, device, config.image_size, hm_root)

    data = load_labelled_images(hm_root, config.labels, config.min_class_count, config.class_cap, config.seed)
    train_loader, val_loader, split_counts = make_loaders(data, config, device)
    logger.info("%d training and %d validation images in %d classes", len(train_loader.dataset), len(val_loader.dataset), len(data.labels))

    model = prepare_model(build_model(config.arch, len(data.labels), config.weights, config.trainable_layers), device)
    result = fit(model, train_loader, val_loader, data.labels, config, device)
    elapsed = time.perf_counter() - started

    metrics = build_metrics(config, data, split_counts, result, device, elapsed)
    (config.out_dir / METRICS_NAME).write_text(json.dumps(metrics, indent=2))
    title = f"{config.arch}, {config.image_size} px"
    write_plots(config.out_dir, data, result.epochs, result.best_scores, result.best_evaluation, list(val_loader.dataset.paths), title, config.seed)

    final = metrics["final"]
    logger.info("run %s done in %.0f s: best epoch %d, val accuracy %.4f, macro-F1 %.4f", config.out_dir, elapsed, result.best_epoch, final["val_accuracy"], final["val_macro_f1"])
    return config.out_dir


def compare_runs(run_dirs: list[Path], out_path: Path) -> Path:
    """Plot several runs' training loss and validation accuracy in one figure, named by run folder."""
    runs = {}
    for run_dir in map(Path, run_dirs):
        metrics_path = run_dir / METRICS_NAME
        if not metrics_path.is_file():
            raise FileNotFoundError(f"no {METRICS_NAME} in {run_dir}; pass folders written by `python -m training classifier`")
        metrics = json.loads(metrics_path.read_text())
        runs[f"{run_dir.name} ({metrics['arch']})"] = metrics["epochs"]
    return plots.plot_run_comparison(runs, out_path)
