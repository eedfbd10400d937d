"""Cut the small real sample that the repository ships, for tests and the demo.

The sample keeps the Kaggle layout, so every loader reads it the way it reads a
full download:

    hm/articles.csv, hm/transactions.csv, hm/images/0XX/*.jpg, hm/fullsize/*.jpg
    fashion_products/styles.csv.gz
    mercari/train_sample.tsv

For the H&M part it takes whole products (all colour variants of a product_code)
until each of the nine product groups has about `photos_per_class` photos, so a
grouped split still works on it. It adds a few articles of rare groups with their
photos (for the rare-class filter) and a few articles without a photo (for the
skip path). Photos are copied byte for byte, at their stored resolution.
"""

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from training.data import image_path, image_table, read_articles, read_transactions
from training.labels import PRODUCT_GROUPS

logger = logging.getLogger(__name__)

# The repository carries the sample, so it must stay small.
MAX_SAMPLE_BYTES = 6 * 1024 * 1024

# The sample's subfolders; only these are replaced when the sample is cut again.
SAMPLE_PARTS = ("hm", "fashion_products", "mercari")


@dataclass
class SampleConfig:
    """Settings of one sample cut: source, destination and how much of each data set to take."""

    source: Path  # data root of the full set, containing hm/, fashion_products/ and mercari/
    dest: Path  # folder the sample is written to, in the same layout
    photos_per_class: int = 30
    rare_groups: int = 2  # rare product groups (outside the label set) to include
    photos_per_rare_group: int = 3
    articles_without_photo: int = 5
    fullsize_photos: int = 3
    catalogue_rows: int = 400
    mercari_rows: int = 400
    seed: int = 0


def _pick_whole_products(rows: pd.DataFrame, target: int, rng: np.random.Generator) -> pd.DataFrame:
    """Pick whole product_codes in random order until at least `target` rows are chosen."""
    codes = rng.permutation(sorted(rows["product_code"].unique()))
    chosen: list[str] = []
    count = 0
    sizes = rows["product_code"].value_counts()
    for code in codes:
        # Skip products with many colour variants once the class is nearly full, so
        # no class overshoots its target by more than a few photos.
        if count and count + sizes[code] > target + 3:
            continue
        chosen.append(code)
        count += sizes[code]
        if count >= target:
            break
    return rows[rows["product_code"].isin(chosen)]


def _select_articles(articles: pd.DataFrame, images_dir: Path, config: SampleConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Choose the sample's articles; returns (articles rows, image-table rows whose photos to copy)."""
    imaged = image_table(articles, images_dir, labels=None)

    parts = []
    for label in PRODUCT_GROUPS:
        parts.append(_pick_whole_products(imaged[imaged["label"] == label], config.photos_per_class, rng))

    rare_counts = imaged.loc[~imaged["label"].isin(PRODUCT_GROUPS), "label"].value_counts()
    for label in rare_counts.index[: config.rare_groups]:
        rows = imaged[imaged["label"] == label]
        picked = rng.choice(len(rows), size=min(config.photos_per_rare_group, len(rows)), replace=False)
        parts.append(rows.iloc[np.sort(picked)])

    with_photo = pd.concat(parts)

    in_label_set = articles["product_group_name"].isin(PRODUCT_GROUPS)
    without_photo = articles[in_label_set & ~articles["article_id"].isin(imaged["article_id"])]
    picked = rng.choice(len(without_photo), size=min(config.articles_without_photo, len(without_photo)), replace=False)
    missing_ids = set(without_photo["article_id"].iloc[picked])

    chosen_ids = set(with_photo["article_id"]) | missing_ids
    return articles[articles["article_id"].isin(chosen_ids)], with_photo


def _copy_photos(with_photo: pd.DataFrame, dest_images: Path) -> None:
    for article_id, source in zip(with_photo["article_id"], with_photo["path"]):
        target = image_path(dest_images, article_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def _copy_fullsize(source_dir: Path, dest_dir: Path, count: int) -> list[str]:
    """Copy the `count` smallest full-size photos and return their article ids.

    The smallest files are taken because every byte is committed; all of them are
    still at the original resolution of about 1166x1750.
    """
    photos = sorted(source_dir.glob("*.jpg"), key=lambda path: (path.stat().st_size, path.name))[:count]
    dest_dir.mkdir(parents=True, exist_ok=True)
    for photo in photos:
        shutil.copyfile(photo, dest_dir / photo.name)
    return [photo.stem for photo in photos]


def _sample_rows(frame: pd.DataFrame, count: int, special: pd.Series, special_count: int, seed: int) -> pd.DataFrame:
    """Take `count` random rows, at least `special_count` of them where `special` is true, in file order."""
    special_rows = frame[special]
    special_rows = special_rows.sample(n=min(special_count, len(special_rows)), random_state=seed)
    rest = frame.drop(index=special_rows.index)
    rest = rest.sample(n=min(count - len(special_rows), len(rest)), random_state=seed)
    return pd.concat([special_rows, rest]).sort_index()


def _cut_catalogue(source: Path, dest: Path, config: SampleConfig) -> int:
    # Read every column as text so values are written back exactly as they were.
    styles = pd.read_csv(source / "styles.csv.gz", dtype=str, keep_default_na=False)
    # Keep a few zero prices and empty descriptions so the price adapters' cleaning runs.
    awkward = (pd.to_numeric(styles["price"], errors="coerce").fillna(0) <= 0) | (styles["description"] == "")
    rows = _sample_rows(styles, config.catalogue_rows, awkward, 6, config.seed)
    dest.mkdir(parents=True, exist_ok=True)
    rows.to_csv(dest / "styles.csv.gz", index=False, compression={"method": "gzip", "mtime": 0})
    return len(rows)


def _cut_mercari(source: Path, dest: Path, config: SampleConfig) -> int:
    listings = pd.read_csv(source / "train_sample.tsv", sep="\t", dtype=str, keep_default_na=False)
    awkward = (pd.to_numeric(listings["price"], errors="coerce").fillna(0) <= 0) | (listings["item_description"] == "No description yet")
    rows = _sample_rows(listings, config.mercari_rows, awkward, 6, config.seed)
    dest.mkdir(parents=True, exist_ok=True)
    rows.to_csv(dest / "train_sample.tsv", sep="\t", index=False)
    return len(rows)


def folder_size(path: Path) -> int:
    """Return the total size in bytes of the files under `path`."""
    return sum(file.stat().st_size for file in Path(path).rglob("*") if file.is_file())


def cut_sample(config: SampleConfig) -> dict:
    """Write the sample to `config.dest` and return a summary of what it holds.

    Replaces the dest's hm/, fashion_products/ and mercari/ folders, and leaves any
    other file in dest alone.
    """
    source, dest = Path(config.source), Path(config.dest)
    if not (source / "hm" / "articles.csv").is_file():
        raise FileNotFoundError(f"no hm/articles.csv under {source}; pass the data root with --source or set FPS_DATA_ROOT")
    for part in SAMPLE_PARTS:
        shutil.rmtree(dest / part, ignore_errors=True)

    rng = np.random.default_rng(config.seed)
    articles = read_articles(source / "hm")
    chosen, with_photo = _select_articles(articles, source / "hm" / "images", config, rng)
    _copy_photos(with_photo, dest / "hm" / "images")

    fullsize_ids = _copy_fullsize(source / "hm" / "fullsize", dest / "hm" / "fullsize", config.fullsize_photos)
    chosen = pd.concat([chosen, articles[articles["article_id"].isin(fullsize_ids)]]).drop_duplicates("article_id")
    chosen.sort_values("article_id").to_csv(dest / "hm" / "articles.csv", index=False)

    transactions = read_transactions(source / "hm")
    transactions = transactions[transactions["article_id"].isin(chosen["article_id"])]
    transactions.to_csv(dest / "hm" / "transactions.csv", index=False)

    summary = {
        "articles": len(chosen),
        "photos": len(with_photo),
        "photos_per_group": with_photo["label"].value_counts().to_dict(),
        "transactions": len(transactions),
        "fullsize_photos": len(fullsize_ids),
        "catalogue_rows": _cut_catalogue(source / "fashion_products", dest / "fashion_products", config),
        "mercari_rows": _cut_mercari(source / "mercari", dest / "mercari", config),
        "bytes": folder_size(dest),
    }
    if summary["bytes"] > MAX_SAMPLE_BYTES:
        logger.warning("sample is %.1f MiB, over the %.0f MiB limit; cut it again with a lower --photos-per-class", summary["bytes"] / 2**20, MAX_SAMPLE_BYTES / 2**20)
    return summary
