"""Building the two model archives that the stack serves.

The demo build trains a small SimpleCNN and the H&M price model on the bundled real
sample (training/sample), exports both to ONNX and packs the archives. It takes a
few minutes on a 2-core CPU. The full build exports runs that the training CLI
trained on a full Kaggle download. When a run folder has no model yet, it runs that
CLI first.
"""

import logging
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_ROOT = REPO_ROOT / "training" / "sample"
EXAMPLE_GROUP = "Garment Upper body"

# Demo classifier: small enough to train in well under a minute on two CPU cores
# from the ~270 sample photos. Its accuracy is far below a real run's (see
# docs/results.md); it exists to exercise the whole serving path.
DEMO_IMAGE_SIZE = 64
DEMO_EPOCHS = 8
DEMO_BATCH_SIZE = 32
# Model version of both demo models, shown in every response.
DEMO_VERSION = "demo"

# The linear price regressors fit in about a second on the sample. The boosted trees
# took 95 s there (2 busy CPU cores) and won nothing on so few rows, so the demo skips them.
DEMO_PRICE_REGRESSORS = ("ridge-0.3", "ridge-1", "ridge-3", "linear-svr")


def build_demo_archives(work_dir: Path, store_dir: Path, archive_profile: str = "cpu") -> None:
    """Train both demo models on the bundled sample, export them and pack the archives into `store_dir`."""
    classifier_run, price_run = train_demo_runs(work_dir)
    archive_runs(classifier_run, price_run, work_dir / "export", store_dir, archive_profile, model_version=DEMO_VERSION)


def train_demo_runs(work_dir: Path, sample_root: Path = SAMPLE_ROOT) -> tuple[Path, Path]:
    """Train the demo classifier and the H&M price model on the sample; return the two run folders."""
    from training.classifier import ClassifierConfig, train_classifier
    from training.price.train import train_price_model

    logger.info("building demo models from the bundled sample in %s (a few minutes on a CPU)", sample_root)
    classifier_run = train_classifier(
        ClassifierConfig(
            out_dir=work_dir / "classifier",
            data_root=sample_root,
            arch="simplecnn",
            image_size=DEMO_IMAGE_SIZE,
            epochs=DEMO_EPOCHS,
            batch_size=DEMO_BATCH_SIZE,
            patience=DEMO_EPOCHS,
            num_workers=0,
            device="cpu",
        )
    )
    price_run = train_price_model("hm", sample_root, work_dir / "price-hm", candidates=DEMO_PRICE_REGRESSORS)
    return classifier_run, price_run


def train_full_runs(data_root: Path | None, classifier_run: Path, price_run: Path, profile: str) -> None:
    """Train the models on the full data with the training CLI, skipping runs that already have a model."""
    from training.data import resolve_data_root

    root = resolve_data_root(data_root)
    if not (root / "hm" / "articles.csv").is_file():
        raise SystemExit(
            f"No H&M data found at {root / 'hm'}. Download the Kaggle data sets and pass --data-root "
            "or set FPS_DATA_ROOT to the folder that holds hm/ (see README.md)."
        )

    if not (classifier_run / "model.pt").is_file():
        _run_training_cli(["classifier", "--profile", profile, "--data-root", str(root), "--out", str(classifier_run)])
    if not (price_run / "price_model.joblib").is_file():
        _run_training_cli(["price", "--dataset", "hm", "--data-root", str(root), "--out", str(price_run)])


def archive_runs(
    classifier_run: Path,
    price_run: Path,
    export_dir: Path,
    store_dir: Path,
    archive_profile: str = "cpu",
    model_version: str = "1.0",
) -> None:
    """Export a classifier run and a price run to ONNX and pack both archives into `store_dir`."""
    from model_store.archive import build_archive

    classifier_dir, price_dir = export_runs(classifier_run, price_run, export_dir, model_version)
    build_archive(classifier_dir, "classifier", store_dir, profile=archive_profile)
    build_archive(price_dir, "price", store_dir, profile=archive_profile)
    logger.info("archives ready in %s", store_dir)


def export_runs(classifier_run: Path, price_run: Path, export_dir: Path, model_version: str) -> tuple[Path, Path]:
    """Export both runs to ONNX; return the classifier and price export folders (model.onnx + manifest.json)."""
    from export.classifier import export_classifier
    from export.price import export_price_model

    classifier_manifest = export_classifier(
        classifier_run / "model.pt", export_dir / "classifier", model_version=model_version
    )
    price_manifest = export_price_model(price_run, export_dir / "price", model_version=model_version)
    return Path(classifier_manifest).parent, Path(price_manifest).parent


def _run_training_cli(arguments: list[str]) -> None:
    command = [sys.executable, "-m", "training", *arguments]
    logger.info("running %s", " ".join(command))
    completed = subprocess.run(command, cwd=REPO_ROOT, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"Training failed with exit code {completed.returncode}: {' '.join(command)}")


def first_sample_product(sample_root: Path) -> tuple[Path, str, str]:
    """Return the photo, name and description of the first bundled article of EXAMPLE_GROUP that has a photo."""
    from training.data import image_path, read_articles

    hm_root = sample_root / "hm"
    articles = read_articles(hm_root)
    for article in articles[articles["product_group_name"] == EXAMPLE_GROUP].itertuples():
        photo = image_path(hm_root / "images", article.article_id)
        if photo.is_file():
            description = article.detail_desc if isinstance(article.detail_desc, str) else ""
            return photo, str(article.prod_name), description
    raise FileNotFoundError(f"No photo of a '{EXAMPLE_GROUP}' article found under {hm_root / 'images'}.")
