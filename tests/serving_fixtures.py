"""Session fixtures that build the demo models and start TorchServe.

The fixture names are stable, because the facade tests build on them:

- `demo_models`: small models trained on the bundled sample (training/sample) and
  exported, as a DemoModels with `classifier_dir` and `price_dir` (each contains
  model.onnx and manifest.json).
- `model_store_dir`: a folder with fashion_classifier.mar and price_regressor.mar,
  built from `demo_models` with the CPU profile.
- `torchserve`: a running TorchServe (model_store.torchserve.TorchServe) on free
  127.0.0.1 ports with token authorization on. It has `inference_url`,
  `management_url`, `metrics_url`, `inference_key`, `management_key`,
  `inference_headers()` and `log_tail()`.

Training and exporting the demo models takes about two minutes of CPU time. To reuse
the exports between runs, set FPS_TEST_MODELS_DIR to a folder. The first run writes the
exports there, and later runs read them instead of training again. Delete the folder
after changing training or export code.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from model_store.archive import build_archive
from model_store.torchserve import ServerConfig, TorchServe

MODELS_DIR_ENV = "FPS_TEST_MODELS_DIR"
MANIFEST_NAME = "manifest.json"

# A SimpleCNN at 64 px trained for 8 epochs took about 75 s of CPU time on the 2-core
# development machine and reached 30% validation accuracy on the sample (9 classes).
# The serving tests need a working model, not an accurate one.
DEMO_IMAGE_SIZE = 64
DEMO_EPOCHS = 8


@dataclass(frozen=True)
class DemoModels:
    """Export folders of the demo models, each containing model.onnx and manifest.json."""

    classifier_dir: Path
    price_dir: Path


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory, sample_root) -> DemoModels:
    """Train small models on the bundled sample and export them (or reuse FPS_TEST_MODELS_DIR)."""
    cache = os.environ.get(MODELS_DIR_ENV)
    root = Path(cache) if cache else tmp_path_factory.mktemp("demo_models")
    models = DemoModels(classifier_dir=root / "fashion_classifier", price_dir=root / "price_regressor")

    if not (models.classifier_dir / MANIFEST_NAME).is_file():
        export_demo_classifier(sample_root, root / "classifier_run", models.classifier_dir)
    if not (models.price_dir / MANIFEST_NAME).is_file():
        export_demo_price_model(sample_root, root / "price_run", models.price_dir)
    return models


@pytest.fixture(scope="session")
def model_store_dir(demo_models, tmp_path_factory) -> Path:
    """A model store with both archives built from the demo models."""
    store = tmp_path_factory.mktemp("model_store")
    build_archive(demo_models.classifier_dir, "classifier", store)
    build_archive(demo_models.price_dir, "price", store)
    return store


@pytest.fixture(scope="session")
def torchserve(model_store_dir, tmp_path_factory) -> TorchServe:
    """TorchServe serving both archives on free loopback ports, token authorization on."""
    config = ServerConfig(model_store=model_store_dir).with_free_ports()
    server = TorchServe(config, tmp_path_factory.mktemp("torchserve"))
    server.start()
    yield server
    server.stop()


def export_demo_classifier(sample_root: Path, run_dir: Path, out_dir: Path) -> Path:
    """Train a SimpleCNN on the sample photos and export it with the export code; return out_dir."""
    from export.classifier import export_classifier
    from training.classifier import ClassifierConfig, train_classifier
    from training.checkpoint import CHECKPOINT_NAME

    config = ClassifierConfig(
        out_dir=run_dir,
        data_root=sample_root,
        arch="simplecnn",
        image_size=DEMO_IMAGE_SIZE,
        epochs=DEMO_EPOCHS,
        batch_size=16,
        patience=DEMO_EPOCHS,
        num_workers=0,
        device="cpu",
    )
    train_classifier(config)
    export_classifier(run_dir / CHECKPOINT_NAME, out_dir, model_version="demo")
    return out_dir


def export_demo_price_model(sample_root: Path, run_dir: Path, out_dir: Path) -> Path:
    """Fit the H&M price pipeline on the sample and export it with the export code; return out_dir."""
    from export.price import export_price_model
    from training.price.train import train_price_model

    # One candidate regressor: the demo needs a working model, not the best of several.
    train_price_model("hm", data_root=sample_root, out_dir=run_dir, candidates=("ridge-1",))
    export_price_model(run_dir, out_dir, data_root=sample_root, model_version="demo")
    return out_dir
