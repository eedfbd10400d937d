"""PNG plots of a price run."""

from pathlib import Path

import matplotlib

# Plots are written to files, also on machines without a display.
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

DPI = 100


def plot_price_scatter(true_price: np.ndarray, predicted_price: np.ndarray, path: Path, title: str, unit: str) -> Path:
    """Draw predicted against true validation prices on log axes, with the line of perfect predictions."""
    true_price = np.asarray(true_price, dtype=np.float64)
    predicted_price = np.asarray(predicted_price, dtype=np.float64)

    # Log axes need positive values: the limits come from the positive prices, and a
    # prediction of zero or below is drawn at the lower edge.
    positive = np.concatenate([true_price[true_price > 0], predicted_price[predicted_price > 0]])
    low, high = float(positive.min()) / 1.2, float(positive.max()) * 1.2
    shown_prediction = np.clip(predicted_price, low, None)

    figure, axes = plt.subplots(figsize=(6, 6))
    axes.scatter(true_price, shown_prediction, s=6, alpha=0.3, edgecolors="none")
    axes.plot([low, high], [low, high], color="black", linewidth=1, label="predicted = true")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlim(low, high)
    axes.set_ylim(low, high)
    # Plain numbers on the decades only, because labelled minor ticks overlap.
    for axis in (axes.xaxis, axes.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_minor_formatter(NullFormatter())
    axes.set_xlabel(f"true price ({unit})")
    axes.set_ylabel(f"predicted price ({unit})")
    axes.set_title(title)
    axes.legend(loc="upper left")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path
