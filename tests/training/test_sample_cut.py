"""The bundled sample and the command that cuts it."""

import pandas as pd
import pytest
from PIL import Image

from training import data
from training.labels import PRODUCT_GROUPS
from training.sample import MAX_SAMPLE_BYTES, SampleConfig, cut_sample, folder_size


def test_bundled_sample_layout(sample_root):
    for relative in ("hm/articles.csv", "hm/transactions.csv", "fashion_products/styles.csv.gz", "mercari/train_sample.tsv"):
        assert (sample_root / relative).is_file(), relative
    assert len(list((sample_root / "hm" / "fullsize").glob("*.jpg"))) >= 2


def test_bundled_sample_size_limit(sample_root):
    assert folder_size(sample_root) < MAX_SAMPLE_BYTES


def test_bundled_sample_photos_per_group(sample_root):
    images = data.load_labelled_images(sample_root / "hm", min_count=10)

    for label in PRODUCT_GROUPS:
        assert images.counts_after_filter[label] >= 20, label


def test_bundled_sample_has_awkward_rows(sample_root):
    articles = data.read_articles(sample_root / "hm")
    table = data.image_table(articles, sample_root / "hm" / "images", labels=None)

    in_label_set = articles["product_group_name"].isin(PRODUCT_GROUPS)
    assert (in_label_set & ~articles["article_id"].isin(table["article_id"])).sum() >= 3
    assert (~table["label"].isin(PRODUCT_GROUPS)).sum() >= 3


def test_bundled_photos_at_stored_resolution(sample_root):
    photos = sorted((sample_root / "hm" / "images").rglob("*.jpg"))[:20]
    sizes = {Image.open(photo).size for photo in photos}
    fullsize = [Image.open(photo).size for photo in (sample_root / "hm" / "fullsize").glob("*.jpg")]

    assert all(height >= 350 for _, height in sizes), sizes
    assert all(height >= 1700 for _, height in fullsize), fullsize


def test_cut_sample_from_bundled_sample(sample_root, tmp_path):
    config = SampleConfig(source=sample_root, dest=tmp_path, photos_per_class=5, fullsize_photos=2, catalogue_rows=30, mercari_rows=30)

    summary = cut_sample(config)

    images = data.load_labelled_images(tmp_path / "hm", min_count=1)
    assert set(images.labels) == set(PRODUCT_GROUPS)
    assert min(images.counts_after_filter.values()) >= 5
    assert summary["fullsize_photos"] == 2
    assert len(pd.read_csv(tmp_path / "fashion_products" / "styles.csv.gz")) == 30
    assert len(pd.read_csv(tmp_path / "mercari" / "train_sample.tsv", sep="\t")) == 30
    transactions = data.read_transactions(tmp_path / "hm")
    assert set(transactions["article_id"]) <= set(data.read_articles(tmp_path / "hm")["article_id"])


def test_cut_sample_keeps_whole_products(sample_root, tmp_path):
    cut_sample(SampleConfig(source=sample_root, dest=tmp_path, photos_per_class=5, catalogue_rows=10, mercari_rows=10))

    source = data.image_table(data.read_articles(sample_root / "hm"), sample_root / "hm" / "images")
    cut = data.image_table(data.read_articles(tmp_path / "hm"), tmp_path / "hm" / "images")
    for code in cut["product_code"].unique():
        assert (cut["product_code"] == code).sum() == (source["product_code"] == code).sum(), code


def test_cut_sample_missing_source_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="--source"):
        cut_sample(SampleConfig(source=tmp_path / "absent", dest=tmp_path / "out"))


@pytest.mark.full_data
def test_cut_sample_from_full_data_matches_bundled(full_data_root, sample_root, tmp_path):
    cut_sample(SampleConfig(source=full_data_root, dest=tmp_path))

    for relative in ("hm/articles.csv", "hm/transactions.csv", "mercari/train_sample.tsv"):
        assert (tmp_path / relative).read_bytes() == (sample_root / relative).read_bytes(), relative
    bundled = sorted(path.relative_to(sample_root) for path in (sample_root / "hm").rglob("*.jpg"))
    assert sorted(path.relative_to(tmp_path) for path in (tmp_path / "hm").rglob("*.jpg")) == bundled
