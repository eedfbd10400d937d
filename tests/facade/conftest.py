"""Real products from the bundled sample for the facade tests: one photo and its text per product group."""

from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from training.data import image_table, read_articles
from training.labels import PRODUCT_GROUPS
from training.price.adapters import HM_COLUMNS

# H&M articles.csv columns for the canonical price fields of the H&M schema.
HM_PRICE_COLUMNS = HM_COLUMNS


@dataclass(frozen=True)
class SampleProduct:
    """One H&M article of the sample: its photo, its product group and its text in canonical field names."""

    article_id: str
    group: str
    photo: Path
    fields: dict[str, str]

    def text_without_group(self) -> dict[str, str]:
        return {name: value for name, value in self.fields.items() if name != "product_group"}


@pytest.fixture(scope="session")
def sample_products(sample_root) -> dict[str, SampleProduct]:
    """The first article with a photo of each of the nine product groups, keyed by group."""
    hm_root = sample_root / "hm"
    articles = read_articles(hm_root).set_index("article_id")
    photos = image_table(articles.reset_index(), hm_root / "images")

    products = {}
    for group in PRODUCT_GROUPS:
        row = photos[photos["label"] == group].iloc[0]
        article = articles.loc[row["article_id"]]
        fields = {name: _text(article[column]) for name, column in HM_PRICE_COLUMNS.items()}
        products[group] = SampleProduct(row["article_id"], group, Path(row["path"]), fields)
    return products


def _text(value) -> str:
    return "" if value != value else str(value)  # NaN (an empty CSV cell) != NaN


@pytest.fixture(scope="session")
def facade_client(facade) -> httpx.Client:
    """An HTTP client for the facade; the timeout only guards against a hang."""
    with httpx.Client(base_url=facade.base_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def torchserve_client(torchserve) -> httpx.Client:
    """An HTTP client for TorchServe's inference API with the inference key, to compare with the facade."""
    headers = {"Authorization": f"Bearer {torchserve.inference_key}"} if torchserve.inference_key else {}
    with httpx.Client(base_url=torchserve.inference_url, headers=headers, timeout=60) as client:
        yield client
