"""The H&M readers and the image table, on the bundled sample and on small hand-made tables."""

import numpy as np
import pandas as pd
import pytest

from training import data
from training.labels import PRODUCT_GROUPS


def write_articles(folder, rows):
    columns = ["article_id", "product_code", "prod_name", "product_group_name"]
    pd.DataFrame(rows, columns=columns).to_csv(folder / "articles.csv", index=False)


def write_photo(images_dir, article_id):
    path = data.image_path(images_dir, article_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not decoded by the table builder")
    return path


def test_read_articles_keeps_leading_zeros(sample_root):
    articles = data.read_articles(sample_root / "hm")

    assert articles["article_id"].str.len().eq(10).all()
    assert articles["article_id"].str.startswith("0").all()
    assert articles["product_code"].str.len().eq(7).all()


def test_read_articles_pads_integer_ids(tmp_path):
    # A table re-saved by a tool that parsed the ids as numbers loses the zero.
    write_articles(tmp_path, [(108775015, 108775, "Strap top", "Garment Upper body")])

    articles = data.read_articles(tmp_path)

    assert articles.loc[0, "article_id"] == "0108775015"
    assert articles.loc[0, "product_code"] == "0108775"


def test_read_articles_missing_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        data.read_articles(tmp_path)


def test_read_transactions_ids_are_strings(sample_root):
    transactions = data.read_transactions(sample_root / "hm")

    assert transactions["article_id"].str.len().eq(10).all()
    assert transactions["price"].dtype == np.float64


def test_image_path_uses_three_digit_folder(tmp_path):
    assert data.image_path(tmp_path, "0108775015") == tmp_path / "010" / "0108775015.jpg"


def test_image_table_skips_articles_without_photo(tmp_path):
    write_articles(
        tmp_path,
        [
            ("0100000001", "0100000", "a", "Shoes"),
            ("0100000002", "0100000", "b", "Shoes"),
            ("0200000001", "0200000", "c", "Socks & Tights"),
        ],
    )
    write_photo(tmp_path / "images", "0100000001")
    write_photo(tmp_path / "images", "0200000001")

    table = data.image_table(data.read_articles(tmp_path), tmp_path / "images")

    assert sorted(table["article_id"]) == ["0100000001", "0200000001"]
    assert set(table.columns) == {"article_id", "product_code", "label", "path"}


def test_image_table_drops_unknown_groups(tmp_path):
    write_articles(tmp_path, [("0100000001", "0100000", "a", "Shoes"), ("0300000001", "0300000", "c", "Unknown")])
    write_photo(tmp_path / "images", "0100000001")
    write_photo(tmp_path / "images", "0300000001")
    articles = data.read_articles(tmp_path)

    assert data.image_table(articles, tmp_path / "images")["label"].tolist() == ["Shoes"]
    assert sorted(data.image_table(articles, tmp_path / "images", labels=None)["label"]) == ["Shoes", "Unknown"]


def test_sample_table_skips_missing_photos(sample_root):
    articles = data.read_articles(sample_root / "hm")
    table = data.image_table(articles, sample_root / "hm" / "images", labels=None)

    assert 0 < len(table) < len(articles)
    assert all(data.image_path(sample_root / "hm" / "images", article_id).is_file() for article_id in table["article_id"])


def test_rare_class_filter_drops_small_classes():
    table = pd.DataFrame({"label": ["a"] * 5 + ["b"] * 2 + ["c"] * 3})

    kept = data.filter_rare_classes(table, min_count=3)

    assert sorted(kept["label"].unique()) == ["a", "c"]
    assert len(kept) == 8


def test_cap_undersamples_large_classes_only():
    table = pd.DataFrame({"label": ["a"] * 50 + ["b"] * 4, "article_id": [f"{i:010d}" for i in range(54)]})

    capped = data.cap_classes(table, cap=10, seed=3)

    assert capped["label"].value_counts().to_dict() == {"a": 10, "b": 4}
    assert capped["article_id"].tolist() == data.cap_classes(table, cap=10, seed=3)["article_id"].tolist()
    assert capped["article_id"].tolist() != data.cap_classes(table, cap=10, seed=4)["article_id"].tolist()


def test_cap_rejects_zero():
    with pytest.raises(ValueError, match="at least 1"):
        data.cap_classes(pd.DataFrame({"label": ["a"]}), cap=0, seed=0)


def test_labelled_images_default_label_set(sample_root):
    images = data.load_labelled_images(sample_root / "hm", min_count=10)

    assert images.labels == list(PRODUCT_GROUPS)
    assert set(images.table["label"]) == set(PRODUCT_GROUPS)
    assert "Unknown" in images.counts_before_filter
    assert "Unknown" not in images.counts_after_filter
    assert images.table["target"].tolist() == [images.labels.index(label) for label in images.table["label"]]


def test_labelled_images_all_groups_filters_rare(sample_root):
    images = data.load_labelled_images(sample_root / "hm", labels=None, min_count=10)

    # The sample has a few photos of rare groups, fewer than 10 each.
    assert sorted(images.labels) == sorted(PRODUCT_GROUPS)
    assert images.labels == sorted(images.labels)


def test_labelled_images_cap_counts(sample_root):
    images = data.load_labelled_images(sample_root / "hm", min_count=10, cap=12, seed=0)

    assert set(images.counts_after_filter.values()) == {12}
    assert min(images.counts_before_filter[label] for label in PRODUCT_GROUPS) > 12


def test_labelled_images_nothing_left_raises(sample_root):
    with pytest.raises(ValueError, match="min-class-count"):
        data.load_labelled_images(sample_root / "hm", min_count=10_000)


def test_class_weights_balanced():
    weights = data.class_weights(np.array([0, 0, 0, 1]), num_classes=2)

    # n / (classes * count): 4 / (2 * 3) and 4 / (2 * 1)
    np.testing.assert_allclose(weights, [4 / 6, 2.0], rtol=1e-6)
    assert weights.dtype == np.float32


def test_class_weights_empty_class_raises():
    with pytest.raises(ValueError, match=r"\[1\]"):
        data.class_weights(np.array([0, 0, 2]), num_classes=3)


def test_class_weights_index_out_of_range_raises():
    with pytest.raises(ValueError, match="num_classes is 2"):
        data.class_weights(np.array([0, 1, 2]), num_classes=2)


def test_price_target_is_median_of_valid_prices():
    transactions = pd.DataFrame(
        {
            "article_id": ["0000000001"] * 4 + ["0000000002"] * 2 + ["0000000003"],
            "price": [0.01, 0.03, 0.02, 0.0, -0.5, None, 0.04],
        }
    )

    targets = data.article_price_targets(transactions).set_index("article_id")

    # Article 1: median of 0.01, 0.03, 0.02 (the zero is dropped); article 2 has no valid price.
    assert targets.loc["0000000001", "price"] == pytest.approx(0.02)
    assert targets.loc["0000000001", "transactions"] == 3
    assert "0000000002" not in targets.index
    assert targets.loc["0000000003", "price"] == pytest.approx(0.04)


def test_price_target_on_sample(sample_root):
    transactions = data.read_transactions(sample_root / "hm")

    targets = data.article_price_targets(transactions)

    assert len(targets) == transactions["article_id"].nunique()
    assert (targets["price"] > 0).all()
    assert targets["article_id"].is_unique


def test_resolve_data_root_order(monkeypatch, tmp_path):
    monkeypatch.setenv(data.DATA_ROOT_ENV, str(tmp_path / "from-env"))
    assert data.resolve_data_root(tmp_path / "flag") == tmp_path / "flag"
    assert data.resolve_data_root() == tmp_path / "from-env"

    monkeypatch.delenv(data.DATA_ROOT_ENV)
    assert data.resolve_data_root() == data.REPO_ROOT.parent / "shared" / "data"


def test_read_transactions_kaggle_file_name(sample_root, tmp_path):
    # The Kaggle download names the table transactions_train.csv.
    (tmp_path / "transactions_train.csv").write_bytes((sample_root / "hm" / "transactions.csv").read_bytes())

    transactions = data.read_transactions(tmp_path, columns=["article_id", "price"])

    assert list(transactions.columns) == ["article_id", "price"]
    assert transactions["article_id"].str.len().eq(10).all()
    assert len(transactions) == len(data.read_transactions(sample_root / "hm"))


def test_read_transactions_missing_file_names_both(tmp_path):
    with pytest.raises(FileNotFoundError, match="transactions_train.csv"):
        data.read_transactions(tmp_path)
