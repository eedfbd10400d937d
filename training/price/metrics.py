"""Price metrics and the median baselines that the model is compared with.

All metrics take prices in the data set's unit, not log values:

- rmse_log: root mean squared error of ln(price). It is scale-free, so it compares
  data sets with different units. Predictions are floored at the smallest training
  price first, because the log of zero or of a negative price is undefined.
- rmsle: root mean squared error of ln(1 + price), the usual RMSLE.
- mdape: median absolute percentage error, |predicted - true| / true, as a fraction.
"""

import numpy as np
import pandas as pd


def price_metrics(true_price: np.ndarray, predicted_price: np.ndarray, price_floor: float) -> dict[str, float]:
    """Compute rmse_log, rmsle and mdape of predicted against true prices (see the module docstring)."""
    true_price = np.asarray(true_price, dtype=np.float64)
    predicted_price = np.asarray(predicted_price, dtype=np.float64)
    if true_price.shape != predicted_price.shape:
        raise ValueError(f"true and predicted prices differ in shape: {true_price.shape} vs {predicted_price.shape}")
    if price_floor <= 0:
        raise ValueError(f"price_floor must be positive, got {price_floor}")

    floored = np.maximum(predicted_price, price_floor)
    return {
        "rmse_log": float(np.sqrt(np.mean((np.log(floored) - np.log(true_price)) ** 2))),
        "rmsle": float(np.sqrt(np.mean((np.log1p(np.maximum(predicted_price, 0.0)) - np.log1p(true_price)) ** 2))),
        "mdape": float(np.median(np.abs(predicted_price - true_price) / true_price)),
    }


def global_median_baseline(train_price: np.ndarray, rows: int) -> np.ndarray:
    """Predict the median training price for each of `rows` rows."""
    return np.full(rows, float(np.median(train_price)))


def group_median_baseline(train_keys: pd.Series, train_price: np.ndarray, keys: pd.Series) -> np.ndarray:
    """Predict the median training price of each row's key (e.g. product type).

    A key that the training rows do not contain gets the global training median.
    """
    medians = pd.Series(np.asarray(train_price, dtype=np.float64), index=np.asarray(train_keys)).groupby(level=0).median()
    predicted = pd.Series(np.asarray(keys)).map(medians)
    return predicted.fillna(float(np.median(train_price))).to_numpy(dtype=np.float64)
