"""Price dataset adapters on the bundled sample: canonical fields, price targets, skipped rows."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from training.price.adapters import (
    CATALOGUE_COLUMNS,
    HM_COLUMNS,
    HM_PRICE_SCALE,
    MERCARI_COLUMNS,
    catalogue_material,
    frame_from_records,
    load_price_dataset,
)


def assert_canonical(dataset, columns: dict[str, str]) -> None:
    names = [field.name for field in dataset.fields]
    assert names == list(columns)
    assert list(dataset.features.columns) == names
    for name in names:
        assert dataset.features[name].map(type).eq(str).all(), f"column {name} has non-str values"
    assert len(dataset.price) == len(dataset.features) == len(dataset.groups)
    assert np.isfinite(dataset.price).all()
    assert (dataset.price > 0).all()
    assert [field.name for field in dataset.fields if field.required] == ["name"]


def test_hm_adapter_schema(sample_root):
    dataset = load_price_dataset("hm", sample_root)

    assert_canonical(dataset, HM_COLUMNS)
    assert dataset.target.transform == "log1p"
    assert dataset.target.currency is None
    assert dataset.product_type_field == "product_type"


def test_hm_price_is_scaled_median(sample_root):
    dataset = load_price_dataset("hm", sample_root)
    articles = pd.read_csv(sample_root / "hm" / "articles.csv", dtype=str)
    transactions = pd.read_csv(sample_root / "hm" / "transactions.csv", dtype={"article_id": str})
    positive = transactions[transactions["price"] > 0]
    medians = positive.groupby("article_id")["price"].median()

    priced = articles[articles["article_id"].isin(medians.index)]
    assert len(dataset.features) == len(priced)
    assert dataset.skipped_rows == len(articles) - len(priced)
    np.testing.assert_allclose(dataset.price, medians.loc[priced["article_id"]].to_numpy() * HM_PRICE_SCALE)
    assert list(dataset.groups) == list(priced["product_code"].str.zfill(7))
    assert list(dataset.features["name"]) == list(priced["prod_name"])


def test_catalogue_adapter_schema(sample_root):
    dataset = load_price_dataset("catalogue", sample_root)

    assert_canonical(dataset, CATALOGUE_COLUMNS)
    assert dataset.target.currency == "INR"
    assert dataset.product_type_field == "article_type"


def test_catalogue_material_from_attributes(sample_root):
    dataset = load_price_dataset("catalogue", sample_root)
    raw = pd.read_csv(sample_root / "fashion_products" / "styles.csv.gz", dtype=str)
    raw = raw[pd.to_numeric(raw["price"]) > 0].reset_index(drop=True)

    fabrics = [json.loads(text).get("Fabric") for text in raw["articleAttributes"]]
    with_fabric = [index for index, fabric in enumerate(fabrics) if fabric and fabric != "NA"]
    assert with_fabric, "the sample should contain rows with a Fabric attribute"
    for index in with_fabric:
        assert dataset.features["material"].iloc[index] == fabrics[index].strip()


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ('{"Fabric": "Cotton", "Fit": "Regular Fit"}', "Cotton"),
        ('{"Fabric": "NA", "Material": "Leather"}', "Leather"),
        ('{"Fit": "Slim"}', ""),
        ("not json", ""),
        ('["Cotton"]', ""),
        (None, ""),
    ],
)
def test_catalogue_material_parsing(attributes, expected):
    assert catalogue_material(attributes) == expected


def test_catalogue_skips_bad_prices(sample_root, tmp_path):
    raw = pd.read_csv(sample_root / "fashion_products" / "styles.csv.gz", dtype=str)
    raw.loc[0, "price"] = "0"
    raw.loc[1, "price"] = "-5"
    raw.loc[2, "price"] = ""
    folder = tmp_path / "fashion_products"
    folder.mkdir()
    with gzip.open(folder / "styles.csv.gz", "wt", encoding="utf-8") as stream:
        raw.to_csv(stream, index=False)

    dataset = load_price_dataset("catalogue", tmp_path)

    assert dataset.skipped_rows == 3
    assert len(dataset.features) == len(raw) - 3
    assert raw.loc[3, "productDisplayName"] == dataset.features["name"].iloc[0]


def test_mercari_adapter(sample_root):
    dataset = load_price_dataset("mercari", sample_root)
    raw = pd.read_csv(sample_root / "mercari" / "train_sample.tsv", sep="\t", dtype=str, keep_default_na=False)
    positive = raw[pd.to_numeric(raw["price"]) > 0].reset_index(drop=True)

    assert_canonical(dataset, MERCARI_COLUMNS)
    assert dataset.target.currency == "USD"
    assert dataset.skipped_rows == len(raw) - len(positive)
    assert dataset.skipped_rows > 0, "the sample should contain a listing with price 0"
    placeholder = positive["item_description"] == "No description yet"
    assert placeholder.any()
    assert (dataset.features["description"][placeholder] == "").all()
    assert set(dataset.features["condition"]) <= {"1", "2", "3", "4", "5"}


def test_non_ascii_text_kept_verbatim(sample_root, tmp_path):
    articles = pd.read_csv(sample_root / "hm" / "articles.csv", dtype=str)
    transactions = pd.read_csv(sample_root / "hm" / "transactions.csv", dtype={"article_id": str})
    priced = articles.index[articles["article_id"].isin(transactions.loc[transactions["price"] > 0, "article_id"])]
    articles.loc[priced[0], "prod_name"] = "Crème brûlée 🔥 Öl"
    articles.loc[priced[0], "detail_desc"] = "Ärmel aus Baumwolle, façon «chemise» – 日本"
    folder = tmp_path / "hm"
    folder.mkdir()
    articles.to_csv(folder / "articles.csv", index=False)
    transactions.to_csv(folder / "transactions.csv", index=False)

    dataset = load_price_dataset("hm", tmp_path)

    assert dataset.features["name"].iloc[0] == "Crème brûlée 🔥 Öl"
    assert dataset.features["description"].iloc[0] == "Ärmel aus Baumwolle, façon «chemise» – 日本"


def test_frame_from_records_fills_absent_fields(sample_root):
    fields = load_price_dataset("mercari", sample_root).fields
    frame = frame_from_records([{"name": "Nike shoes"}, {"name": "Bag", "brand": None, "shipping": "1", "condition": 0}], fields)

    assert list(frame.columns) == [field.name for field in fields]
    assert frame.loc[0].to_dict() == {"name": "Nike shoes", "description": "", "brand": "", "category": "", "condition": "", "shipping": ""}
    assert frame.loc[1, "brand"] == ""
    assert frame.loc[1, "shipping"] == "1"
    assert frame.loc[1, "condition"] == "0"


def test_unknown_dataset_rejected(sample_root):
    with pytest.raises(ValueError, match="unknown price dataset 'ebay'"):
        load_price_dataset("ebay", sample_root)


def test_missing_files_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="styles.csv.gz"):
        load_price_dataset("catalogue", tmp_path)
