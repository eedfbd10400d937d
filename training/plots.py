"""PNG plots of a classifier run: class counts, curves, confusion matrix, predictions."""

from collections.abc import Sequence
from pathlib import Path

import matplotlib

# Plots are written to files, also on machines without a display.
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from training.photo_dataset import load_photo  # noqa: E402

DPI = 100


def _label_epoch_axis(axes: plt.Axes) -> None:
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def _save(figure: plt.Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def plot_class_distribution(before: dict[str, int], after: dict[str, int], path: Path) -> Path:
    """Draw images per class before and after the label set, rare-class filter and cap."""
    names = sorted(before, key=lambda name: -before[name])
    positions = np.arange(len(names))
    figure, axes = plt.subplots(figsize=(10, 5))
    axes.bar(positions - 0.2, [before[name] for name in names], width=0.4, label="before filter")
    axes.bar(positions + 0.2, [after.get(name, 0) for name in names], width=0.4, label="after filter and cap")
    axes.set_xticks(positions, names, rotation=45, ha="right")
    axes.set_ylabel("images")
    axes.set_title("Images per product group")
    axes.legend()
    return _save(figure, path)


def plot_training_curves(epochs: list[dict], path: Path, title: str = "") -> Path:
    """Draw train and validation loss, and validation accuracy and macro-F1, per epoch."""
    numbers = [row["epoch"] for row in epochs]
    figure, (loss_axes, score_axes) = plt.subplots(1, 2, figsize=(11, 4))

    loss_axes.plot(numbers, [row["train_loss"] for row in epochs], marker="o", label="train")
    loss_axes.plot(numbers, [row["val_loss"] for row in epochs], marker="o", label="validation")
    _label_epoch_axis(loss_axes)
    loss_axes.set_ylabel("weighted cross-entropy")
    loss_axes.legend()

    score_axes.plot(numbers, [row["val_accuracy"] for row in epochs], marker="o", label="accuracy")
    score_axes.plot(numbers, [row["val_macro_f1"] for row in epochs], marker="o", label="macro-F1")
    _label_epoch_axis(score_axes)
    score_axes.set_ylabel("validation score")
    score_axes.set_ylim(0, 1)
    score_axes.legend()

    if title:
        figure.suptitle(title)
    return _save(figure, path)


def plot_run_comparison(runs: dict[str, list[dict]], path: Path) -> Path:
    """Draw several runs' training loss and validation accuracy in one figure; `runs` maps a name to its epochs."""
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(11, 4))
    for name, epochs in runs.items():
        numbers = [row["epoch"] for row in epochs]
        loss_axes.plot(numbers, [row["train_loss"] for row in epochs], marker="o", label=name)
        accuracy_axes.plot(numbers, [row["val_accuracy"] for row in epochs], marker="o", label=name)

    _label_epoch_axis(loss_axes)
    loss_axes.set_ylabel("training loss")
    loss_axes.legend()
    _label_epoch_axis(accuracy_axes)
    accuracy_axes.set_ylabel("validation accuracy")
    accuracy_axes.set_ylim(0, 1)
    accuracy_axes.legend()
    return _save(figure, path)


def plot_confusion_matrix(matrix: np.ndarray, labels: Sequence[str], path: Path) -> Path:
    """Draw the confusion matrix normalised per true class, so each row is that class's recall spread."""
    matrix = np.asarray(matrix, dtype=float)
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)

    figure, axes = plt.subplots(figsize=(8, 7))
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, fraction=0.046)
    ticks = np.arange(len(labels))
    axes.set_xticks(ticks, labels, rotation=45, ha="right")
    axes.set_yticks(ticks, labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for row in range(len(labels)):
        for column in range(len(labels)):
            value = normalised[row, column]
            axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if value > 0.5 else "black")
    axes.set_title("Confusion matrix (rows sum to 1)")
    return _save(figure, path)


def plot_prediction_grid(paths: Sequence[str], true: Sequence[int], predicted: Sequence[int], labels: Sequence[str], path: Path, columns: int = 6) -> Path:
    """Draw validation photos titled with prediction and truth: green when right, red when wrong."""
    rows = max(1, int(np.ceil(len(paths) / columns)))
    figure, axes_grid = plt.subplots(rows, columns, figsize=(columns * 1.6, rows * 2.3))
    for axes in np.ravel(axes_grid):
        axes.axis("off")

    for axes, photo, true_index, predicted_index in zip(np.ravel(axes_grid), paths, true, predicted):
        right = true_index == predicted_index
        thumbnail = load_photo(photo)
        thumbnail.thumbnail((120, 180))
        axes.imshow(thumbnail)
        mark = "right" if right else "wrong"
        axes.set_title(f"{mark}: {labels[predicted_index]}\ntrue: {labels[true_index]}", fontsize=6, color="green" if right else "red")
    return _save(figure, path)
