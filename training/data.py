"""Readers for the Kaggle H&M data layout and the classifier's image table.

The layout is the Kaggle download's:

    hm/articles.csv                       one row per article; article_id is a 10-digit string
    hm/transactions.csv                   t_dat, customer_id, article_id, price, sales_channel_id
                                          (transactions_train.csv in the Kaggle download)
    hm/images/0XX/0XXXXXXXXX.jpg          product photos; the folder is the id's first 3 digits

Price note: `price` in transactions.csv is Kaggle's normalised price (the real price
times an undisclosed constant), so price targets are in that unit, not in a currency.
"""

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from training.labels import PRODUCT_GROUPS

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT_ENV = "FPS_DATA_ROOT"
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"

# The bundled sample names the table transactions.csv, the Kaggle download transactions_train.csv.
TRANSACTIONS_FILES = ("transactions.csv", "transactions_train.csv")

ARTICLE_ID_DIGITS = 10
# The 10-digit article id is a leading zero, the 6-digit product_code and a 3-digit
# colour-variant suffix. Padded to 7 digits, product_code is the id's prefix.
PRODUCT_CODE_DIGITS = 7

# Classes with fewer images are dropped, because with a 1/5 validation share a class
# needs a few dozen images before both sides contain several of its products. The
# default label set already leaves out the rare groups, so the filter matters most
# with labels=None, where it drops Unknown, Bags, Items and the like.
DEFAULT_MIN_CLASS_COUNT = 20
# Larger classes are undersampled to this many images, as in the original course project.
DEFAULT_CLASS_CAP = 8000


def resolve_data_root(data_root: str | Path | None = None) -> Path:
    """Return the data root: the argument, else $FPS_DATA_ROOT, else ../shared/data beside the repository."""
    if data_root is not None:
        return Path(data_root)
    from_env = os.environ.get(DATA_ROOT_ENV)
    if from_env:
        return Path(from_env)
    return DEFAULT_DATA_ROOT


def _pad_ids(values: pd.Series, digits: int) -> pd.Series:
    # Ids stay strings with their leading zeros. zfill also repairs files that a tool
    # re-saved with the ids parsed as integers.
    return values.astype(str).str.strip().str.zfill(digits)


def read_articles(hm_root: Path) -> pd.DataFrame:
    """Read hm/articles.csv with article_id and product_code as zero-padded strings."""
    path = Path(hm_root) / "articles.csv"
    if not path.is_file():
        raise FileNotFoundError(f"articles table not found: {path}. Pass the folder that contains the Kaggle H&M files.")

    articles = pd.read_csv(path, dtype={"article_id": str, "product_code": str})
    articles["article_id"] = _pad_ids(articles["article_id"], ARTICLE_ID_DIGITS)
    articles["product_code"] = _pad_ids(articles["product_code"], PRODUCT_CODE_DIGITS)

    duplicates = articles["article_id"].duplicated()
    if duplicates.any():
        logger.warning("articles.csv: dropped %d duplicate article_id rows", int(duplicates.sum()))
        articles = articles[~duplicates]

    return articles.reset_index(drop=True)


def read_transactions(hm_root: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read the transactions table with article_id as a zero-padded string and price as float.

    Reads hm/transactions.csv, or transactions_train.csv as the Kaggle download names
    it. `columns` limits the columns read, which matters for the full Kaggle file of
    about 31 million rows: ["article_id", "price"] is enough for the price targets.
    """
    hm_root = Path(hm_root)
    candidates = [hm_root / name for name in TRANSACTIONS_FILES]
    path = next((candidate for candidate in candidates if candidate.is_file()), None)
    if path is None:
        raise FileNotFoundError(
            f"transactions table not found: none of {', '.join(map(str, candidates))} exists. "
            "Pass the folder that contains the Kaggle H&M files."
        )

    transactions = pd.read_csv(path, dtype={"article_id": str, "customer_id": str}, usecols=columns)
    transactions["article_id"] = _pad_ids(transactions["article_id"], ARTICLE_ID_DIGITS)
    if "price" in transactions:
        transactions["price"] = pd.to_numeric(transactions["price"], errors="coerce")
    return transactions


def article_price_targets(transactions: pd.DataFrame) -> pd.DataFrame:
    """Compute each article's price target: the median of its transaction prices.

    Transactions with a missing or non-positive price are dropped first, so an
    article whose prices are all invalid gets no row. Returns columns article_id,
    price (Kaggle's normalised price) and transactions (rows behind the median).
    """
    prices = pd.to_numeric(transactions["price"], errors="coerce")
    valid = transactions[prices.notna() & (prices > 0)].assign(price=prices)

    dropped = len(transactions) - len(valid)
    if dropped:
        logger.info("price targets: dropped %d transactions with a missing or non-positive price", dropped)

    grouped = valid.groupby("article_id")["price"]
    targets = pd.DataFrame({"price": grouped.median(), "transactions": grouped.size()}).reset_index()
    return targets


def image_path(images_dir: Path, article_id: str) -> Path:
    """Return the Kaggle image path of an article: images/0XX/0XXXXXXXXX.jpg."""
    return Path(images_dir) / article_id[:3] / f"{article_id}.jpg"


def image_table(articles: pd.DataFrame, images_dir: Path, labels: tuple[str, ...] | None = PRODUCT_GROUPS) -> pd.DataFrame:
    """Build the image table: article_id, product_code, label and path of every imaged article.

    The label is product_group_name. Articles whose group is not in `labels` are
    dropped (pass labels=None to keep every group), and articles without a photo
    are skipped. Both counts go to the log.
    """
    table = articles[["article_id", "product_code", "product_group_name"]].rename(columns={"product_group_name": "label"})

    if labels is not None:
        known = table["label"].isin(labels)
        if (~known).any():
            logger.info(
                "image table: dropped %d articles outside the label set (%s)",
                int((~known).sum()),
                ", ".join(sorted(table.loc[~known, "label"].astype(str).unique())),
            )
        table = table[known]

    paths = [image_path(images_dir, article_id) for article_id in table["article_id"]]
    has_image = np.array([path.is_file() for path in paths], dtype=bool)
    table = table.assign(path=[str(path) for path in paths])[has_image]
    logger.info("image table: %d articles with a photo, %d skipped without one", int(has_image.sum()), int((~has_image).sum()))

    return table.reset_index(drop=True)


def filter_rare_classes(table: pd.DataFrame, min_count: int) -> pd.DataFrame:
    """Drop the classes that have fewer than `min_count` images."""
    counts = table["label"].value_counts()
    rare = counts[counts < min_count]
    if len(rare):
        logger.info("rare-class filter (min %d images): dropped %s", min_count, dict(rare))
    return table[~table["label"].isin(rare.index)].reset_index(drop=True)


def cap_classes(table: pd.DataFrame, cap: int, seed: int) -> pd.DataFrame:
    """Undersample every class with more than `cap` images to `cap` images, seeded."""
    if cap < 1:
        raise ValueError(f"class cap must be at least 1, got {cap}")

    parts = []
    for _, rows in table.groupby("label", sort=False):
        if len(rows) > cap:
            logger.info("class cap: %s undersampled from %d to %d images", rows["label"].iloc[0], len(rows), cap)
            rows = rows.sample(n=cap, random_state=seed)
        parts.append(rows)
    return pd.concat(parts).sort_index().reset_index(drop=True)


@dataclass
class LabelledImages:
    """The classifier's image table after the label filter, the rare-class filter and the cap."""

    table: pd.DataFrame  # article_id, product_code, label, path, target (class index)
    labels: list[str]  # class-index order
    counts_before_filter: dict[str, int]  # images per product group before the label set and the rare-class filter
    counts_after_filter: dict[str, int]  # images per class after the filter and the cap


def load_labelled_images(
    hm_root: Path,
    labels: tuple[str, ...] | None = PRODUCT_GROUPS,
    min_count: int = DEFAULT_MIN_CLASS_COUNT,
    cap: int = DEFAULT_CLASS_CAP,
    seed: int = 0,
) -> LabelledImages:
    """Read the H&M articles and photos into the classifier's image table.

    Classes keep the order of `labels` (PRODUCT_GROUPS by default) minus the ones
    the rare-class filter drops; with labels=None they are sorted by name.
    """
    hm_root = Path(hm_root)
    articles = read_articles(hm_root)
    everything = image_table(articles, hm_root / "images", labels=None)
    counts_before = everything["label"].value_counts().to_dict()

    table = everything if labels is None else everything[everything["label"].isin(labels)]
    table = filter_rare_classes(table, min_count)
    if table.empty:
        raise ValueError(f"no images left in {hm_root} after the label set and the rare-class filter (min {min_count}); lower --min-class-count")
    table = cap_classes(table, cap, seed)

    present = set(table["label"])
    ordered = sorted(present) if labels is None else [label for label in labels if label in present]
    table = table.assign(target=table["label"].map({label: index for index, label in enumerate(ordered)}).astype(int))
    counts_after = {label: int((table["label"] == label).sum()) for label in ordered}

    return LabelledImages(
        table=table,
        labels=ordered,
        counts_before_filter={str(label): int(count) for label, count in counts_before.items()},
        counts_after_filter=counts_after,
    )


def grouped_split(table: pd.DataFrame, val_fraction: float = 0.2, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split into train and validation by product_code, stratified by label, seeded.

    Colour variants of one product share a product_code and look almost the same, so
    a product's articles all land on one side. The validation share is 1/round(1/val_fraction)
    of the products (one fold of StratifiedGroupKFold), so 0.2 gives exactly one fifth.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")

    n_splits = max(2, round(1 / val_fraction))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    train_index, val_index = next(splitter.split(table, table["label"], groups=table["product_code"]))
    return table.iloc[train_index].reset_index(drop=True), table.iloc[val_index].reset_index(drop=True)


def class_weights(targets: np.ndarray | pd.Series, num_classes: int) -> np.ndarray:
    """Compute balanced class weights n / (num_classes * count_c) from the training targets.

    Raises ValueError when a class has no training example, because its weight would be infinite.
    """
    counts = np.bincount(np.asarray(targets, dtype=int), minlength=num_classes)
    if len(counts) > num_classes:
        raise ValueError(f"targets contain class index {len(counts) - 1}, but num_classes is {num_classes}")
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        raise ValueError(f"classes {empty.tolist()} have no training images; raise the cap or drop them with --min-class-count")
    return (counts.sum() / (num_classes * counts)).astype(np.float32)
