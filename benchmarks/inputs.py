"""Real benchmark inputs: H&M photos at stored resolution, full-size photos and text rows.

The full data set is read from the data root (flag, else $FPS_DATA_ROOT, else
../shared/data beside the repository). When it is absent the bundled sample in
training/sample/ is used, which has the same layout and fewer files.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from training.data import REPO_ROOT, image_table, read_articles, resolve_data_root
from training.price.adapters import HM_COLUMNS

logger = logging.getLogger(__name__)

SAMPLE_ROOT = REPO_ROOT / "training" / "sample"

# H&M articles.csv columns behind the price model's canonical text fields.
HM_TEXT_COLUMNS: dict[str, str] = HM_COLUMNS


@dataclass(frozen=True)
class Photo:
    """One product photo as the JPEG bytes a client uploads."""

    name: str
    label: str | None
    data: bytes
    path: Path | None = None


@dataclass
class BenchInputs:
    """Everything the load generator and the in-process runs send."""

    data_root: Path
    source: str  # "full" for the full data set, "sample" for the bundled sample
    stored_photos: list[Photo]
    fullsize_photos: list[Photo]
    text_rows: list[dict[str, str]]

    def describe(self) -> dict:
        """Summarize the inputs for the report."""
        return {
            "source": self.source,
            "data_root": str(self.data_root),
            "stored_photos": len(self.stored_photos),
            "stored_photo_bytes_mean": _mean_size(self.stored_photos),
            "fullsize_photos": len(self.fullsize_photos),
            "fullsize_photo_bytes_mean": _mean_size(self.fullsize_photos),
            "text_rows": len(self.text_rows),
        }


def _mean_size(photos: list[Photo]) -> float | None:
    return sum(len(photo.data) for photo in photos) / len(photos) if photos else None


def choose_data_root(data_root: str | Path | None = None) -> tuple[Path, str]:
    """Return (root, "full") when the full data set exists, else (training/sample, "sample").

    An explicitly passed data root that does not hold hm/articles.csv is an error,
    because silently benchmarking the sample instead would mislead.
    """
    root = resolve_data_root(data_root)
    if (root / "hm" / "articles.csv").is_file():
        return root, "full"
    if data_root is not None:
        raise FileNotFoundError(f"hm/articles.csv not found under --data-root {root}; pass the folder with the Kaggle layout.")
    if (SAMPLE_ROOT / "hm" / "articles.csv").is_file():
        logger.info("full data set not found at %s; using the bundled sample %s", root, SAMPLE_ROOT)
        return SAMPLE_ROOT, "sample"
    raise FileNotFoundError(
        f"No benchmark data: neither {root} nor {SAMPLE_ROOT} contains hm/articles.csv. "
        "Set FPS_DATA_ROOT or create the sample with `python -m training sample`."
    )


def load_stored_photos(data_root: Path, per_label: int) -> list[Photo]:
    """Read up to per_label photos of each of the nine product groups, picked evenly by article id.

    The order interleaves the groups, so any prefix of the list mixes all of them.
    """
    table = image_table(read_articles(data_root / "hm"), data_root / "hm" / "images")
    table = table.sort_values("article_id")

    per_group: list[list[Photo]] = []
    for label, rows in table.groupby("label", sort=True):
        step = max(1, len(rows) // per_label)
        chosen = rows.iloc[::step].head(per_label)
        per_group.append([Photo(row.article_id, str(label), Path(row.path).read_bytes(), Path(row.path)) for row in chosen.itertuples()])

    interleaved = []
    for position in range(max((len(group) for group in per_group), default=0)):
        interleaved.extend(group[position] for group in per_group if position < len(group))
    return interleaved


def load_fullsize_photos(data_root: Path, limit: int) -> list[Photo]:
    """Read up to `limit` full-size originals from hm/fullsize/, sorted by name."""
    paths = sorted((data_root / "hm" / "fullsize").glob("*.jpg"))[:limit]
    return [Photo(path.stem, None, path.read_bytes(), path) for path in paths]


def load_hm_text_rows(data_root: Path, limit: int) -> list[dict[str, str]]:
    """Read `limit` H&M articles as price-model rows with the canonical field names.

    Rows are taken evenly across the table; missing values become empty strings,
    as a client that leaves a field blank would send them.
    """
    articles = read_articles(data_root / "hm")
    step = max(1, len(articles) // limit)
    chosen = articles.iloc[::step].head(limit)
    columns = chosen[list(HM_TEXT_COLUMNS.values())].fillna("").astype(str)
    columns.columns = list(HM_TEXT_COLUMNS.keys())
    return columns.to_dict(orient="records")


def load_inputs(
    data_root: str | Path | None = None,
    photos_per_label: int = 8,
    fullsize_limit: int = 20,
    text_rows: int = 200,
) -> BenchInputs:
    """Load photos and text rows from the full data set, or from the sample when it is absent."""
    root, source = choose_data_root(data_root)
    inputs = BenchInputs(
        data_root=root,
        source=source,
        stored_photos=load_stored_photos(root, photos_per_label),
        fullsize_photos=load_fullsize_photos(root, fullsize_limit),
        text_rows=load_hm_text_rows(root, text_rows),
    )
    if not inputs.stored_photos:
        raise FileNotFoundError(f"no photos found under {root / 'hm' / 'images'}; the benchmark needs real photos")
    logger.info("benchmark inputs: %s", inputs.describe())
    return inputs

