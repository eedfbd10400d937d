"""Dataset adapters: read each supported data set into the price model's canonical string fields.

Every adapter returns a PriceDataset whose `features` frame has one string column per
schema field (missing values become ""), in the order of `fields`, so that the
pipeline, schema.json and the ONNX inputs all share the same names. Rows with a
missing, zero or negative price are skipped and counted in the log.

Supported data sets, each in its Kaggle file layout under the data root:

    hm          hm/articles.csv + hm/transactions.csv (H&M Personalized Fashion Recommendations)
    catalogue   fashion_products/styles.csv.gz (Fashion Product Images, Myntra, prices in INR)
    mercari     mercari/train_sample.tsv or mercari/train.tsv (Mercari Price Suggestion Challenge, USD)
"""

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from training.data import article_price_targets, read_articles, read_transactions

logger = logging.getLogger(__name__)

TEXT = "text"
CATEGORY = "category"

# Request size limits that the server enforces per field. They bound the tokenizer's
# work per request while leaving room above the real data: the longest H&M name has
# 30 characters, and 99.9% of the catalogue's descriptions have at most 3,554.
NAME_MAX_LENGTH = 300
DESCRIPTION_MAX_LENGTH = 20_000
CATEGORY_MAX_LENGTH = 200

# Kaggle's H&M prices are about 0.001-0.5. log1p is almost linear there, so a model
# trained on log1p(price) would in effect fit the raw price. Scaled by 1000 the prices
# lie in about 1-500, where log1p behaves like log.
HM_PRICE_SCALE = 1000.0
HM_UNIT = "Kaggle normalised price x 1000"

MERCARI_NO_DESCRIPTION = "No description yet"
MERCARI_FILES = ("train_sample.tsv", "train.tsv")
CATALOGUE_FILES = ("styles.csv.gz", "styles.csv")
# The catalogue's articleAttributes JSON names the material "Fabric", but a few
# product types use "Material" instead.
CATALOGUE_MATERIAL_KEYS = ("Fabric", "Material")
# Placeholder that the catalogue writes for an attribute without a value.
CATALOGUE_MISSING_ATTRIBUTE = "NA"


@dataclass(frozen=True)
class FieldSpec:
    """One model input: a string field, its feature kind and its request limits."""

    name: str
    kind: str  # TEXT (TF-IDF) or CATEGORY (one-hot)
    required: bool
    max_length: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TargetSpec:
    """The price target: its transform and the unit and currency of the price it predicts."""

    transform: str
    unit: str
    currency: str | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PriceDataset:
    """A data set in the canonical schema, ready for the price pipeline."""

    name: str
    features: pd.DataFrame  # one str column per field, in the order of `fields`
    price: np.ndarray  # float64, in target.unit, every value > 0
    groups: np.ndarray  # split groups: rows that share a group stay on one side of the split
    group_description: str  # what the groups are, for metrics.json
    product_type_field: str  # field of the per-product-type median baseline
    fields: tuple[FieldSpec, ...]
    target: TargetSpec
    skipped_rows: int  # rows dropped for a missing, zero or negative price

    def schema(self) -> dict:
        """Return the schema.json content: dataset, fields and target."""
        return {
            "dataset": self.name,
            "fields": [field.to_dict() for field in self.fields],
            "target": self.target.to_dict(),
        }


def _text(name: str, required: bool = False, max_length: int = NAME_MAX_LENGTH) -> FieldSpec:
    return FieldSpec(name=name, kind=TEXT, required=required, max_length=max_length)


def _category(name: str) -> FieldSpec:
    return FieldSpec(name=name, kind=CATEGORY, required=False, max_length=CATEGORY_MAX_LENGTH)


# Canonical field -> source column, in model input order.
HM_COLUMNS = {
    "name": "prod_name",
    "description": "detail_desc",
    "product_type": "product_type_name",
    "product_group": "product_group_name",
    "colour": "colour_group_name",
    "department": "department_name",
    "index_name": "index_name",
    "garment_group": "garment_group_name",
    "graphical_appearance": "graphical_appearance_name",
}
CATALOGUE_COLUMNS = {
    "name": "productDisplayName",
    "description": "description",
    "brand": "brandName",
    "gender": "gender",
    "master_category": "masterCategory",
    "sub_category": "subCategory",
    "article_type": "articleType",
    "colour": "baseColour",
    "season": "season",
    "usage": "usage",
    "material": "material",  # derived from articleAttributes by the adapter
}
MERCARI_COLUMNS = {
    "name": "name",
    "description": "item_description",
    "brand": "brand_name",
    "category": "category_name",
    "condition": "item_condition_id",
    "shipping": "shipping",
}


def _fields(columns: Mapping[str, str]) -> tuple[FieldSpec, ...]:
    # The same rule for every data set: name is required, description is long text,
    # and every other field is an optional category.
    specs = []
    for name in columns:
        if name == "name":
            specs.append(_text(name, required=True))
        elif name == "description":
            specs.append(_text(name, max_length=DESCRIPTION_MAX_LENGTH))
        else:
            specs.append(_category(name))
    return tuple(specs)


def string_frame(table: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    """Select `columns` (field -> source column) as str columns named by field, with missing values as ""."""
    frame = pd.DataFrame(index=table.index)
    for field, column in columns.items():
        values = table[column]
        frame[field] = values.where(values.notna(), "").astype(str).astype(object)
    return frame.reset_index(drop=True)


def frame_from_records(records: Sequence[Mapping[str, str]], fields: Sequence[FieldSpec] | Sequence[dict]) -> pd.DataFrame:
    """Build a feature frame from request-like dicts. Absent fields and None become "", as the server fills them."""
    names = [field.name if isinstance(field, FieldSpec) else field["name"] for field in fields]
    rows = [{name: "" if record.get(name) is None else str(record[name]) for name in names} for record in records]
    return pd.DataFrame(rows, columns=names, dtype=object)


def _valid_price_mask(prices: pd.Series, source: str) -> pd.Series:
    numeric = pd.to_numeric(prices, errors="coerce")
    valid = numeric.notna() & np.isfinite(numeric) & (numeric > 0)
    skipped = int((~valid).sum())
    if skipped:
        logger.info("%s: skipped %d of %d rows with a missing, zero or negative price", source, skipped, len(prices))
    return valid


def _first_existing(folder: Path, names: Sequence[str]) -> Path:
    for name in names:
        path = folder / name
        if path.is_file():
            return path
    raise FileNotFoundError(f"{' or '.join(names)} not found in {folder}. Pass the data root that holds the Kaggle files.")


def load_hm(data_root: Path) -> PriceDataset:
    """Read H&M articles with a price target: the median of each article's transaction prices.

    Transactions with a missing or non-positive price are dropped first, and articles
    without any remaining transaction are skipped. Groups are product codes, because
    colour variants of one product share their name and description.
    """
    hm_root = Path(data_root) / "hm"
    articles = read_articles(hm_root)
    targets = article_price_targets(read_transactions(hm_root))

    table = articles.merge(targets[["article_id", "price"]], on="article_id", how="left")
    valid = _valid_price_mask(table["price"], "hm articles")
    table = table[valid]

    return PriceDataset(
        name="hm",
        features=string_frame(table, HM_COLUMNS),
        price=table["price"].to_numpy(dtype=np.float64) * HM_PRICE_SCALE,
        groups=table["product_code"].to_numpy(dtype=object),
        group_description="product_code",
        product_type_field="product_type",
        fields=_fields(HM_COLUMNS),
        target=TargetSpec(transform="log1p", unit=HM_UNIT, currency=None),
        skipped_rows=int((~valid).sum()),
    )


def catalogue_material(attributes: object) -> str:
    """Return the material from a catalogue articleAttributes JSON string, or "" when it has none."""
    if not isinstance(attributes, str) or not attributes.strip():
        return ""
    try:
        parsed = json.loads(attributes)
    except json.JSONDecodeError:
        return ""
    if not isinstance(parsed, dict):
        return ""

    for key in CATALOGUE_MATERIAL_KEYS:
        value = parsed.get(key)
        if isinstance(value, str) and value.strip() and value.strip() != CATALOGUE_MISSING_ATTRIBUTE:
            return value.strip()
    return ""


def _read_text_table(path: Path, separator: str = ",") -> pd.DataFrame:
    # Every column stays text and only empty cells count as missing, so a brand or
    # category literally named "NA" or "None" keeps its name.
    return pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False, na_values=[""])


def load_catalogue(data_root: Path) -> PriceDataset:
    """Read the Fashion Product Images catalogue: list prices in Indian rupees, brand and attributes.

    Groups are the lower-cased display names, because the catalogue lists some
    products several times under the same name.
    """
    path = _first_existing(Path(data_root) / "fashion_products", CATALOGUE_FILES)
    table = _read_text_table(path)

    valid = _valid_price_mask(table["price"], f"catalogue {path.name}")
    table = table[valid].copy()
    table["material"] = table["articleAttributes"].map(catalogue_material)

    features = string_frame(table, CATALOGUE_COLUMNS)
    return PriceDataset(
        name="catalogue",
        features=features,
        price=pd.to_numeric(table["price"]).to_numpy(dtype=np.float64),
        groups=features["name"].str.lower().str.strip().to_numpy(dtype=object),
        group_description="lower-cased product name",
        product_type_field="article_type",
        fields=_fields(CATALOGUE_COLUMNS),
        target=TargetSpec(transform="log1p", unit="INR", currency="INR"),
        skipped_rows=int((~valid).sum()),
    )


def load_mercari(data_root: Path) -> PriceDataset:
    """Read the Mercari training TSV: listing prices in US dollars.

    "No description yet" is Mercari's placeholder for an empty description and
    becomes "". Every row is its own group, because listings have no product id.
    """
    path = _first_existing(Path(data_root) / "mercari", MERCARI_FILES)
    table = _read_text_table(path, separator="\t")

    valid = _valid_price_mask(table["price"], f"mercari {path.name}")
    table = table[valid].copy()
    table["item_description"] = table["item_description"].replace(MERCARI_NO_DESCRIPTION, "")

    return PriceDataset(
        name="mercari",
        features=string_frame(table, MERCARI_COLUMNS),
        price=pd.to_numeric(table["price"]).to_numpy(dtype=np.float64),
        groups=np.arange(len(table)),
        group_description="row (no product id)",
        product_type_field="category",
        fields=_fields(MERCARI_COLUMNS),
        target=TargetSpec(transform="log1p", unit="USD", currency="USD"),
        skipped_rows=int((~valid).sum()),
    )


ADAPTERS: dict[str, Callable[[Path], PriceDataset]] = {
    "hm": load_hm,
    "catalogue": load_catalogue,
    "mercari": load_mercari,
}
DATASETS = tuple(ADAPTERS)


def load_price_dataset(dataset: str, data_root: Path) -> PriceDataset:
    """Read `dataset` (one of DATASETS) from `data_root` into the canonical schema."""
    if dataset not in ADAPTERS:
        raise ValueError(f"unknown price dataset {dataset!r}; choose one of {', '.join(DATASETS)}")

    loaded = ADAPTERS[dataset](Path(data_root))
    if len(loaded.features) == 0:
        raise ValueError(f"{dataset}: no rows with a positive price under {data_root}")
    logger.info("%s: %d rows with a price, %d skipped", dataset, len(loaded.features), loaded.skipped_rows)
    return loaded
