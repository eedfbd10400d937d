"""Export of the product-group classifier checkpoint to ONNX, checked for parity on real photos.

The ONNX graph takes "image" float32 [N, 3, H, W] with a dynamic batch axis N and
returns "probabilities" float32 [N, C], because softmax is part of the graph. The
export uses the torch.export-based exporter (`torch.onnx.export(dynamo=True)`), which
is the default since PyTorch 2.9. The legacy TorchScript exporter also produces a
dynamic batch axis with torch 2.14.1, but it is deprecated and emits a warning.
"""

import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from PIL import Image
from torch import nn

from export.manifest import (
    MANIFEST_NAME,
    TASK_IMAGE_CLASSIFICATION,
    build_manifest,
    describe_onnx_tensors,
    file_sha256,
    write_manifest,
)
from training.checkpoint import load_checkpoint
from training.transforms import eval_transform, preprocessing_spec

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_IMAGES = REPO_ROOT / "training" / "sample" / "hm" / "images"

ONNX_NAME = "model.onnx"
MODEL_NAME = "fashion_classifier"
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
BATCH_AXIS = "batch"

# Opset 18 instead of the exporter's default (20 in torch 2.14.1), so that ONNX
# Runtime releases older than the pinned one can load the model too.
DEFAULT_OPSET = 18
PARITY_BATCH_SIZES = (1, 2, 7)
PARITY_TOLERANCE = 1e-4

# Protobuf cannot serialise a message of 2 GiB or more, so a larger model would need
# an external-data file, which a TorchServe archive would not carry next to model.onnx.
MAX_ONNX_BYTES = 2**31 - 1


class ParityError(RuntimeError):
    """The ONNX model's probabilities differ from PyTorch's by more than the tolerance."""


class SoftmaxClassifier(nn.Module):
    """A classifier wrapper whose output is class probabilities, so that softmax is inside the ONNX graph."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(image), dim=1)


def list_photos(directory: Path, count: int) -> list[Path]:
    """Return `count` JPEG photos from `directory` and its subfolders, evenly spaced over the sorted list.

    Spacing the picks spreads them over the article-id folders, which mixes product
    groups better than taking the first files. Raises FileNotFoundError when the
    folder contains fewer than `count` photos.
    """
    photos = sorted(Path(directory).rglob("*.jpg"))
    if len(photos) < count:
        raise FileNotFoundError(
            f"Found {len(photos)} JPEG photos under {directory}, but {count} are needed. "
            "Pass a folder with more photos (for example the full data set's hm/images)."
        )
    step = len(photos) / count
    return [photos[int(index * step)] for index in range(count)]


def load_batch(paths: list[Path], image_size: int) -> torch.Tensor:
    """Load photos as one float32 [N, 3, image_size, image_size] batch with the evaluation transform."""
    transform = eval_transform(image_size)
    tensors = []
    for path in paths:
        with Image.open(path) as image:
            tensors.append(transform(image.convert("RGB")))
    return torch.stack(tensors)


def export_onnx(model: nn.Module, image_size: int, onnx_path: Path, opset: int = DEFAULT_OPSET) -> Path:
    """Export a classifier to a self-contained ONNX file with a dynamic batch axis and softmax output."""
    wrapped = SoftmaxClassifier(model).eval()

    # The example batch has 2 images because torch.export specialises a dimension
    # of size 1 to a constant, which would fix the batch size at 1.
    example = torch.zeros(2, 3, image_size, image_size)
    batch = torch.export.Dim(BATCH_AXIS, min=1)
    program = torch.onnx.export(
        wrapped,
        (example,),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes={INPUT_NAME: {0: batch}},
        opset_version=opset,
        dynamo=True,
        external_data=False,
        verbose=False,
    )
    program.save(str(onnx_path), external_data=False)

    _check_self_contained(onnx_path)
    return onnx_path


def _check_self_contained(onnx_path: Path) -> None:
    """Raise ValueError unless the ONNX file is valid, under the protobuf size limit and has no external data."""
    size = onnx_path.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise ValueError(f"{onnx_path} is {size} bytes, over the 2 GiB protobuf limit, so it cannot ship as one file.")

    model = onnx.load(str(onnx_path), load_external_data=False)
    external = [tensor.name for tensor in model.graph.initializer if tensor.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise ValueError(
            f"{onnx_path} stores {len(external)} initializers in external files (first: {external[0]}). "
            "Export with external_data=False so that model.onnx is self-contained."
        )
    onnx.checker.check_model(model)
    logger.info("Exported %s (%.1f MB)", onnx_path, size / 1e6)


def check_parity(
    onnx_path: Path,
    model: nn.Module,
    images: torch.Tensor,
    batch_sizes: tuple[int, ...] = PARITY_BATCH_SIZES,
    tolerance: float = PARITY_TOLERANCE,
) -> float:
    """Compare ONNX Runtime's probabilities with PyTorch's on the first N images for each batch size N.

    Returns the maximum absolute difference over all batch sizes. Raises ParityError
    when it exceeds `tolerance`, and ValueError when `images` has fewer rows than the
    largest batch size.
    """
    if len(images) < max(batch_sizes):
        raise ValueError(f"Parity needs at least {max(batch_sizes)} images for batch sizes {batch_sizes}, got {len(images)}.")

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    wrapped = SoftmaxClassifier(model).eval()

    max_difference = 0.0
    for batch_size in batch_sizes:
        batch = images[:batch_size]
        with torch.no_grad():
            expected = wrapped(batch).numpy()
        actual = session.run([OUTPUT_NAME], {INPUT_NAME: batch.numpy()})[0]

        if actual.shape != expected.shape:
            raise ParityError(f"ONNX output shape {actual.shape} differs from PyTorch's {expected.shape} at batch size {batch_size}.")
        difference = float(np.abs(actual - expected).max())
        logger.info("Parity at batch size %d: max abs difference %.3g", batch_size, difference)
        if not difference <= tolerance:
            raise ParityError(
                f"ONNX probabilities differ from PyTorch by {difference:.3g} at batch size {batch_size}, "
                f"over the tolerance {tolerance:g}. The exported graph does not match the model; check the "
                "exporter's warnings and the opset."
            )
        max_difference = max(max_difference, difference)
    return max_difference


def export_classifier(
    checkpoint_path: Path,
    out_dir: Path,
    parity_images: list[Path] | None = None,
    opset: int = DEFAULT_OPSET,
    model_name: str = MODEL_NAME,
    model_version: str = "1.0",
    tolerance: float = PARITY_TOLERANCE,
) -> Path:
    """Export a classifier checkpoint to `out_dir`/model.onnx, write its manifest and return the manifest path.

    `parity_images` are photo paths for the parity check and default to photos from the
    bundled sample. An earlier manifest in `out_dir` is deleted first, and the new ONNX
    file is deleted when parity fails, so a manifest in `out_dir` always describes a
    checked model.
    """
    checkpoint_path = Path(checkpoint_path)
    out_dir = Path(out_dir)
    model, metadata = load_checkpoint(checkpoint_path)
    image_size = metadata["image_size"]

    if parity_images is None:
        parity_images = list_photos(SAMPLE_IMAGES, max(PARITY_BATCH_SIZES))
    images = load_batch(parity_images, image_size)

    # A manifest from an earlier export would describe the wrong ONNX file if this one fails.
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    onnx_path = out_dir / ONNX_NAME
    export_onnx(model, image_size, onnx_path, opset=opset)
    try:
        max_difference = check_parity(onnx_path, model, images, tolerance=tolerance)
    except ParityError:
        onnx_path.unlink()
        raise

    inputs, outputs = describe_onnx_tensors(onnx_path)
    manifest = build_manifest(
        model_name=model_name,
        model_version=model_version,
        task=TASK_IMAGE_CLASSIFICATION,
        onnx_file=ONNX_NAME,
        onnx_sha256=file_sha256(onnx_path),
        inputs=inputs,
        outputs=outputs,
        labels=list(metadata["labels"]),
        preprocessing=preprocessing_spec(image_size),
        training={
            "run": checkpoint_path.parent.name,
            "arch": metadata["arch"],
            "image_size": image_size,
            "metrics": metadata.get("metrics", {}),
        },
        export={
            "exporter": "torch.onnx.export(dynamo=True)",
            "torch_version": torch.__version__,
            "opset": opset,
            "parity_batch_sizes": list(PARITY_BATCH_SIZES),
            "parity_max_abs_difference": max_difference,
        },
    )
    return write_manifest(out_dir, manifest)
