"""Fixtures for the export tests: a small SimpleCNN checkpoint, its FP32 export and its INT8 variant."""

from pathlib import Path

import pytest
import torch

from export.classifier import PARITY_BATCH_SIZES, export_classifier, list_photos, load_batch
from export.quantize import quantize_classifier
from training.checkpoint import save_checkpoint
from training.labels import PRODUCT_GROUPS
from training.models import build_model

IMAGE_SIZE = 64
CHECKPOINT_METRICS = {"val_accuracy": 0.25, "val_macro_f1": 0.2}
CALIBRATION_COUNT = 16


@pytest.fixture(scope="session")
def sample_images(sample_root: Path) -> Path:
    return sample_root / "hm" / "images"


@pytest.fixture(scope="session")
def parity_photos(sample_images: Path) -> list[Path]:
    return list_photos(sample_images, max(PARITY_BATCH_SIZES))


@pytest.fixture(scope="session")
def calibration_photos(sample_images: Path) -> list[Path]:
    return list_photos(sample_images, 2 * CALIBRATION_COUNT)


@pytest.fixture(scope="session")
def checkpoint_path(tmp_path_factory, calibration_photos: list[Path]) -> Path:
    """A randomly initialised SimpleCNN whose batch-norm statistics come from real photos.

    With the default statistics (mean 0, variance 1), every photo gets almost the same
    output. One pass in training mode over real photos makes the outputs differ per photo.
    """
    torch.manual_seed(0)
    model = build_model("simplecnn", len(PRODUCT_GROUPS))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            # momentum None makes the running statistics the plain average over the passes.
            module.momentum = None
    model.train()
    with torch.no_grad():
        model(load_batch(calibration_photos, IMAGE_SIZE))
    model.eval()

    path = tmp_path_factory.mktemp("run") / "model.pt"
    save_checkpoint(path, model, "simplecnn", list(PRODUCT_GROUPS), IMAGE_SIZE, CHECKPOINT_METRICS)
    return path


@pytest.fixture(scope="session")
def fp32_dir(tmp_path_factory, checkpoint_path: Path, parity_photos: list[Path]) -> Path:
    out_dir = tmp_path_factory.mktemp("fp32")
    export_classifier(checkpoint_path, out_dir, parity_images=parity_photos)
    return out_dir


@pytest.fixture(scope="session")
def int8_dir(tmp_path_factory, fp32_dir: Path, calibration_photos: list[Path]) -> Path:
    out_dir = tmp_path_factory.mktemp("int8")
    quantize_classifier(fp32_dir, calibration_photos, out_dir, count=CALIBRATION_COUNT)
    return out_dir
