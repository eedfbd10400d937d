"""Training on damaged data: missing, zero, negative and unreadable prices, and missing photos.

Each test copies the bundled sample, damages a known set of rows, trains, and checks
that training completes and that the log and metrics count exactly the rows that
had to be skipped. The expected counts are computed here from the damaged files,
independently of the training code.
"""

import gzip
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.classifier import ClassifierConfig, train_classifier
from training.checkpoint import CHECKPOINT_NAME
from training.price.train import METRICS_NAME, PIPELINE_NAME, train_price_model

# The damage written into every price column: a missing value, zero, negatives and text.
BAD_PRICES = ("", "0", "-0.02", "-15", "abc", "nan")
# One candidate keeps each training to seconds; the candidate search is not under test here.
FAST_CANDIDATE = "ridge-1"


def is_invalid_price(values: pd.Series) -> pd.Series:
    numeric = pd.to_numeric(values, errors="coerce")
    return numeric.isna() | ~np.isfinite(numeric) | (numeric <= 0)


def damage_prices(table: pd.DataFrame, column: str, every: int) -> pd.DataFrame:
    """Overwrite the price of every `every`-th row with the values in BAD_PRICES, in turn."""
    damaged = table.copy()
    damaged[column] = damaged[column].astype(object)
    rows = damaged.index[::every]
    for position, row in enumerate(rows):
        damaged.loc[row, column] = BAD_PRICES[position % len(BAD_PRICES)]
    return damaged


@pytest.fixture()
def damaged_root(sample_root, tmp_path) -> Path:
    """A copy of the bundled sample that each test damages in its own way."""
    root = tmp_path / "data"
    shutil.copytree(sample_root, root, ignore=shutil.ignore_patterns("README.md"))
    return root


def test_hm_price_training_skips_bad_prices(damaged_root, tmp_path, caplog):
    path = damaged_root / "hm" / "transactions.csv"
    transactions = damage_prices(pd.read_csv(path, dtype=str), "price", every=7)
    # Every transaction of one article gets a bad price, so the article has no target at all.
    victim = transactions["article_id"].iloc[0]
    transactions.loc[transactions["article_id"] == victim, "price"] = "-1"
    transactions.to_csv(path, index=False)

    invalid = is_invalid_price(transactions["price"])
    articles = pd.read_csv(damaged_root / "hm" / "articles.csv", dtype=str)
    priced_articles = set(transactions.loc[~invalid, "article_id"])
    expected_skipped_articles = int((~articles["article_id"].isin(priced_articles)).sum())

    with caplog.at_level(logging.INFO):
        run = train_price_model("hm", damaged_root, tmp_path / "run", candidates=[FAST_CANDIDATE])

    assert (run / PIPELINE_NAME).is_file()
    metrics = pd.read_json(run / METRICS_NAME, typ="series")
    assert metrics["rows"]["skipped"] == expected_skipped_articles
    assert metrics["rows"]["with_price"] == len(articles) - expected_skipped_articles
    assert f"dropped {int(invalid.sum())} transactions with a missing or non-positive price" in caplog.text
    assert f"skipped {expected_skipped_articles} of {len(articles)} rows" in caplog.text


@pytest.mark.parametrize(
    ("dataset", "relative_path", "separator"),
    [("catalogue", "fashion_products/styles.csv.gz", ","), ("mercari", "mercari/train_sample.tsv", "\t")],
)
def test_listing_price_training_skips_bad_prices(dataset, relative_path, separator, damaged_root, tmp_path, caplog):
    path = damaged_root / relative_path
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as stream:
        table = pd.read_csv(stream, sep=separator, dtype=str, keep_default_na=False)
    table = damage_prices(table, "price", every=5)
    with opener(path, "wt", encoding="utf-8") as stream:
        table.to_csv(stream, sep=separator, index=False)

    expected_skipped = int(is_invalid_price(table["price"].replace("", np.nan)).sum())
    assert expected_skipped >= len(BAD_PRICES), "the damage did not reach the file"

    with caplog.at_level(logging.INFO):
        run = train_price_model(dataset, damaged_root, tmp_path / "run", candidates=[FAST_CANDIDATE])

    assert (run / PIPELINE_NAME).is_file()
    metrics = pd.read_json(run / METRICS_NAME, typ="series")
    assert metrics["rows"]["skipped"] == expected_skipped
    assert metrics["rows"]["with_price"] == len(table) - expected_skipped
    assert f"skipped {expected_skipped} of {len(table)} rows with a missing, zero or negative price" in caplog.text


def test_classifier_training_skips_missing_photos(damaged_root, tmp_path, caplog):
    images = damaged_root / "hm" / "images"
    photos = sorted(images.rglob("*.jpg"))
    removed = photos[::9]
    for photo in removed:
        photo.unlink()

    articles = pd.read_csv(damaged_root / "hm" / "articles.csv", dtype=str)
    article_ids = articles["article_id"].str.zfill(10)
    present = article_ids.map(lambda article_id: (images / article_id[:3] / f"{article_id}.jpg").is_file())
    assert int((~present).sum()) >= len(removed)

    config = ClassifierConfig(
        out_dir=tmp_path / "run",
        data_root=damaged_root,
        arch="simplecnn",
        image_size=32,
        epochs=1,
        batch_size=16,
        max_train_batches=2,
        min_class_count=5,
        num_workers=0,
        device="cpu",
    )
    with caplog.at_level(logging.INFO):
        run = train_classifier(config)

    assert (Path(run) / CHECKPOINT_NAME).is_file()
    assert f"{int(present.sum())} articles with a photo, {int((~present).sum())} skipped without one" in caplog.text
