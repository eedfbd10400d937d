"""The train/validation split keeps every product_code on one side."""

import pytest

from training import data
from training.labels import PRODUCT_GROUPS


def assert_grouped(train, val):
    shared = set(train["product_code"]) & set(val["product_code"])
    assert not shared, f"product codes on both sides: {sorted(shared)[:5]}"


def test_split_groups_products_on_sample(sample_root):
    images = data.load_labelled_images(sample_root / "hm", min_count=10)

    train, val = data.grouped_split(images.table, val_fraction=0.2, seed=0)

    assert_grouped(train, val)
    assert len(train) + len(val) == len(images.table)
    assert set(val["label"]) == set(PRODUCT_GROUPS)
    assert set(train["label"]) == set(PRODUCT_GROUPS)


def test_split_is_seeded(sample_root):
    table = data.load_labelled_images(sample_root / "hm", min_count=10).table

    first = data.grouped_split(table, seed=1)[1]["article_id"].tolist()
    again = data.grouped_split(table, seed=1)[1]["article_id"].tolist()
    other = data.grouped_split(table, seed=2)[1]["article_id"].tolist()

    assert first == again
    assert first != other


def test_split_rejects_bad_fraction(sample_root):
    table = data.load_labelled_images(sample_root / "hm", min_count=10).table

    with pytest.raises(ValueError, match="val_fraction"):
        data.grouped_split(table, val_fraction=1.5)


@pytest.mark.full_data
def test_split_groups_products_on_full_data(full_data_root):
    images = data.load_labelled_images(full_data_root / "hm")

    train, val = data.grouped_split(images.table, val_fraction=0.2, seed=0)

    assert_grouped(train, val)
    # Colour variants share a product_code, so some products have several articles.
    assert images.table["product_code"].nunique() < len(images.table)
    for label in images.labels:
        share = (val["label"] == label).sum() / (images.table["label"] == label).sum()
        assert 0.1 < share < 0.3, f"{label}: {share:.2f} of its images in validation"
