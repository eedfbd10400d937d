"""The classifier files a benchmark run serves and scores: checkpoint, FP32 and INT8 ONNX exports.

The classifier checkpoint is the newest ResNet50 run under runs/ unless one is
passed. Without one, a randomly initialised ResNet50 is used instead: its throughput
is that of the real model, because the weights' values do not change the compute,
but its accuracy is meaningless and the report notes it.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from training.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from training.data import REPO_ROOT
from training.labels import PRODUCT_GROUPS
from training.models import build_model

logger = logging.getLogger(__name__)

RUNS_DIR = REPO_ROOT / "runs"
PRICE_PIPELINE_NAME = "price_model.joblib"

# ResNet50's ImageNet input size, and the size the stock handler crops to.
DEFAULT_IMAGE_SIZE = 224


@dataclass
class ModelArtifacts:
    """Paths and facts of the models one run serves and scores.

    Throughput is measured at `image_size` and accuracy at `trained_image_size`. They
    differ when the checkpoint was trained at another size than the benchmark's
    (224 px by default, ResNet50's ImageNet size and the stock handler's crop). The
    weights are the same, because ResNet50's global pooling accepts any input size.
    """

    checkpoint: Path
    trained: bool
    arch: str
    image_size: int
    trained_image_size: int
    labels: list[str]
    fp32_dir: Path
    int8_dir: Path | None = None
    accuracy_fp32_dir: Path | None = None
    accuracy_int8_dir: Path | None = None

    def describe(self) -> dict:
        """Summarize the models for the report."""
        return {
            "checkpoint": str(self.checkpoint),
            "trained": self.trained,
            "arch": self.arch,
            "image_size": self.image_size,
            "trained_image_size": self.trained_image_size,
            "labels": self.labels,
            "fp32_onnx": str(self.fp32_dir / "model.onnx"),
            "int8_onnx": str(self.int8_dir / "model.onnx") if self.int8_dir else None,
        }


def _run_arch(run_dir: Path) -> str | None:
    """Return the architecture recorded in a run's metrics.json, or None when it has none."""
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        return None
    try:
        return json.loads(metrics_path.read_text()).get("arch")
    except json.JSONDecodeError:
        logger.warning("%s is not valid JSON; the run is skipped", metrics_path)
        return None


def find_resnet50_checkpoint(runs_dir: Path = RUNS_DIR) -> Path | None:
    """Return the newest runs/*/model.pt whose run trained a ResNet50, or None."""
    candidates = [
        path for path in Path(runs_dir).glob(f"*/{CHECKPOINT_NAME}") if _run_arch(path.parent) == "resnet50"
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda path: path.stat().st_mtime)


def find_price_run(runs_dir: Path = RUNS_DIR) -> Path | None:
    """Return the newest run folder under runs/ (at any depth) with a fitted H&M price pipeline, or None.

    Only H&M runs qualify, because the benchmark's text rows are H&M articles.
    """
    candidates = []
    for path in Path(runs_dir).glob(f"**/{PRICE_PIPELINE_NAME}"):
        schema_path = path.parent / "schema.json"
        if schema_path.is_file() and json.loads(schema_path.read_text()).get("dataset") == "hm":
            candidates.append(path)
    if not candidates:
        return None
    return max(candidates, key=lambda path: path.stat().st_mtime).parent


def random_resnet50_checkpoint(path: Path, seed: int = 0) -> Path:
    """Write a randomly initialised ResNet50 checkpoint for the nine product groups at 224 px."""
    torch.manual_seed(seed)
    model = build_model("resnet50", len(PRODUCT_GROUPS)).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, model, "resnet50", list(PRODUCT_GROUPS), DEFAULT_IMAGE_SIZE, {"note": "randomly initialised"})
    logger.warning("no trained ResNet50 checkpoint found; wrote a randomly initialised one to %s", path)
    return path


def checkpoint_at_size(checkpoint: Path, image_size: int, out_path: Path) -> Path:
    """Return the checkpoint itself if it is at image_size, else a copy whose metadata records image_size.

    Export reads the input size from the checkpoint, so the copy makes it export the
    same weights for another input size.
    """
    data = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if int(data["image_size"]) == image_size:
        return checkpoint
    data["image_size"] = image_size
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, out_path)
    return out_path


def _export_pair(checkpoint: Path, out_dir: Path, calibration_photos: list[Path] | None) -> tuple[Path, Path | None]:
    """Export FP32 into out_dir/fp32 and, with calibration photos, INT8 into out_dir/int8."""
    from export.classifier import export_classifier
    from export.quantize import quantize_classifier

    fp32_dir = out_dir / "fp32"
    export_classifier(checkpoint, fp32_dir)
    int8_dir = None
    if calibration_photos:
        int8_dir = out_dir / "int8"
        quantize_classifier(fp32_dir, calibration_photos, int8_dir)
    return fp32_dir, int8_dir


def export_classifiers(
    checkpoint: Path, trained: bool, work_dir: Path, image_size: int, calibration_photos: list[Path] | None
) -> ModelArtifacts:
    """Export the checkpoint at image_size for throughput and, if trained at another size, at that size for accuracy.

    INT8 variants are exported only when calibration photos are given.
    """
    _, metadata = load_checkpoint(checkpoint)
    trained_size = int(metadata["image_size"])

    sized = checkpoint_at_size(checkpoint, image_size, work_dir / f"checkpoint_{image_size}px" / CHECKPOINT_NAME)
    fp32_dir, int8_dir = _export_pair(sized, work_dir / f"classifier_{image_size}px", calibration_photos)
    accuracy_fp32_dir, accuracy_int8_dir = fp32_dir, int8_dir
    if trained_size != image_size:
        logger.info("checkpoint trained at %d px: exporting it at that size too, for accuracy", trained_size)
        accuracy_fp32_dir, accuracy_int8_dir = _export_pair(
            checkpoint, work_dir / f"classifier_{trained_size}px", calibration_photos
        )

    return ModelArtifacts(
        checkpoint=checkpoint,
        trained=trained,
        arch=metadata["arch"],
        image_size=image_size,
        trained_image_size=trained_size,
        labels=list(metadata["labels"]),
        fp32_dir=fp32_dir,
        int8_dir=int8_dir,
        accuracy_fp32_dir=accuracy_fp32_dir,
        accuracy_int8_dir=accuracy_int8_dir,
    )
