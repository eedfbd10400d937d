"""INT8 variant of an exported classifier, by ONNX Runtime static quantization.

Static quantization needs the range of every activation, so a calibration pass runs
the FP32 model over real training photos first. The result is a second model
directory with its own model.onnx and manifest.json, which the benchmarks compare
with the FP32 model for accuracy and speed.
"""

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)

from export.classifier import INPUT_NAME, ONNX_NAME, OUTPUT_NAME, load_batch
from export.manifest import MANIFEST_NAME, build_manifest, describe_onnx_tensors, file_sha256, read_manifest, write_manifest
from training.data import grouped_split, load_labelled_images

logger = logging.getLogger(__name__)

QUANT_FORMATS = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
ACTIVATION_TYPES = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}

# QDQ with uint8 activations and int8 weights (U8S8) was the fastest combination for a
# ResNet50 at 224 px. The measurement used ONNX Runtime 1.32 with 2 intra-op threads on
# a 2-core AMD EPYC with AVX-512 VNNI. U8S8 QDQ reached about 2.5 times the FP32
# throughput at batch sizes 1 and 8.
# QOperator U8S8 was never faster than QDQ U8S8 and up to 40% slower. QDQ with int8
# activations was no faster than FP32, and QOperator with int8 activations was
# several times slower than FP32 (ONNX Runtime warns about that one on x86-64).
# NOTE: other jobs loaded the machine during that measurement, so only the ratios hold.
DEFAULT_FORMAT = "qdq"
DEFAULT_ACTIVATION_TYPE = "uint8"
DEFAULT_CALIBRATION_COUNT = 100

# Photos per calibration and agreement batch. ONNX Runtime 1.32's MinMax calibrator
# stores only the min and max of each activation per batch, so memory stays small.
CALIBRATION_BATCH_SIZE = 8

# Below this share of photos with the same top-1 label as FP32, export logs a warning,
# because a bad calibration set or a badly quantized operator is the likely cause.
# NOTE: a chosen value, not a measured one. An untrained model can fall below it
# because its class probabilities are almost equal.
MIN_TOP1_AGREEMENT = 0.9


class PhotoCalibrationReader(CalibrationDataReader):
    """Feed preprocessed photos to the calibrator in batches, as the "image" input."""

    def __init__(self, photos: list[Path], image_size: int, batch_size: int = CALIBRATION_BATCH_SIZE):
        self.photos = list(photos)
        self.image_size = image_size
        self.batch_size = batch_size
        self._batches = self._iterate()

    def _iterate(self) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self.photos), self.batch_size):
            paths = self.photos[start : start + self.batch_size]
            yield {INPUT_NAME: load_batch(paths, self.image_size).numpy()}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:
        self._batches = self._iterate()


def training_photos(data_root: Path, labels: list[str], val_fraction: float = 0.2, seed: int = 0) -> list[Path]:
    """Return the photos of the classifier's training split under `data_root`/hm, for calibration.

    The split is the one training makes with the same `val_fraction` and `seed`
    (0.2 and 0 are the training defaults), so calibration never uses the validation
    photos on which the benchmarks measure INT8 accuracy.
    """
    images = load_labelled_images(Path(data_root) / "hm", labels=tuple(labels))
    train_table, _ = grouped_split(images.table, val_fraction, seed)
    return [Path(path) for path in train_table["path"]]


def quantize_classifier(
    model_dir: Path,
    calibration_images: list[Path],
    out_dir: Path,
    count: int = DEFAULT_CALIBRATION_COUNT,
    quant_format: str = DEFAULT_FORMAT,
    activation_type: str = DEFAULT_ACTIVATION_TYPE,
    model_name: str | None = None,
    agreement_images: list[Path] | None = None,
) -> Path:
    """Quantize the FP32 classifier in `model_dir` to INT8 in `out_dir` and return the new manifest path.

    Calibration uses `count` photos evenly spaced over `calibration_images`. The top-1
    agreement with the FP32 model is measured on `agreement_images` (default: the
    calibration photos used), stored in the manifest and logged as a warning when below
    MIN_TOP1_AGREEMENT. `model_name` defaults to the FP32 name with "_int8" appended.
    """
    if quant_format not in QUANT_FORMATS:
        raise ValueError(f"Invalid quantization format {quant_format!r}. Choose one of: {', '.join(QUANT_FORMATS)}.")
    if activation_type not in ACTIVATION_TYPES:
        raise ValueError(f"Invalid activation type {activation_type!r}. Choose one of: {', '.join(ACTIVATION_TYPES)}.")
    model_dir = Path(model_dir)
    out_dir = Path(out_dir)
    source = read_manifest(model_dir)
    image_size = _square_image_size(source["preprocessing"])
    calibration = _spread(list(calibration_images), count)

    # A manifest from an earlier run would describe the wrong ONNX file if this one fails.
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    onnx_path = out_dir / ONNX_NAME
    _quantize(model_dir / source["onnx_file"], onnx_path, calibration, image_size, quant_format, activation_type)

    agreement_photos = list(agreement_images) if agreement_images is not None else calibration
    agreement = top1_agreement(model_dir / source["onnx_file"], onnx_path, agreement_photos, image_size)
    logger.info("INT8 top-1 agrees with FP32 on %.1f%% of %d photos", 100 * agreement, len(agreement_photos))
    if agreement < MIN_TOP1_AGREEMENT:
        logger.warning(
            "INT8 top-1 agrees with FP32 on only %.1f%% of photos. Check the calibration photos and the quantized graph.",
            100 * agreement,
        )

    return _write_int8_manifest(
        source, onnx_path, model_name, quant_format, activation_type, len(calibration), agreement, len(agreement_photos)
    )


def _square_image_size(preprocessing: dict) -> int:
    height, width = preprocessing["resize"]
    if height != width:
        raise ValueError(f"Calibration supports square inputs only, but the manifest resizes to {height}x{width}.")
    return height


def _spread(photos: list[Path], count: int) -> list[Path]:
    """Return `count` items evenly spaced over `photos`, or all of them when there are fewer."""
    if count < 1:
        raise ValueError(f"Calibration photo count must be at least 1, got {count}.")
    if not photos:
        raise ValueError("No calibration photos given. Pass the paths of real training photos.")
    if len(photos) <= count:
        return photos
    step = len(photos) / count
    return [photos[int(index * step)] for index in range(count)]


def _quantize(
    fp32_path: Path, int8_path: Path, photos: list[Path], image_size: int, quant_format: str, activation_type: str
) -> None:
    # quant_pre_process adds the tensor shapes from symbolic shape inference and applies
    # ONNX Runtime's graph optimisations, so the quantizer works on the graph that runs.
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared))
        logger.info("Calibrating on %d photos (format %s, activations %s)", len(photos), quant_format, activation_type)
        quantize_static(
            str(prepared),
            str(int8_path),
            calibration_data_reader=PhotoCalibrationReader(photos, image_size),
            quant_format=QUANT_FORMATS[quant_format],
            activation_type=ACTIVATION_TYPES[activation_type],
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
            # Softmax and the logits before it stay float32, because 8-bit
            # probabilities have a resolution of 1/255 and turn close classes into ties.
            nodes_to_exclude=_nodes_of_type(prepared, "Softmax"),
            extra_options={"OpTypesToExcludeOutputQuantization": ["Gemm", "MatMul"]},
        )
    logger.info("Wrote %s (%.1f MB)", int8_path, int8_path.stat().st_size / 1e6)


def _nodes_of_type(onnx_path: Path, op_type: str) -> list[str]:
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return [node.name for node in graph.node if node.op_type == op_type]


def top1_agreement(fp32_path: Path, int8_path: Path, photos: list[Path], image_size: int) -> float:
    """Return the share of photos on which the two models predict the same top-1 class."""
    if not photos:
        raise ValueError("No photos given for the top-1 agreement check.")
    fp32 = ort.InferenceSession(str(fp32_path), providers=["CPUExecutionProvider"])
    int8 = ort.InferenceSession(str(int8_path), providers=["CPUExecutionProvider"])

    matches = 0
    for start in range(0, len(photos), CALIBRATION_BATCH_SIZE):
        batch = load_batch(photos[start : start + CALIBRATION_BATCH_SIZE], image_size).numpy()
        fp32_top1 = fp32.run([OUTPUT_NAME], {INPUT_NAME: batch})[0].argmax(axis=1)
        int8_top1 = int8.run([OUTPUT_NAME], {INPUT_NAME: batch})[0].argmax(axis=1)
        matches += int((fp32_top1 == int8_top1).sum())
    return matches / len(photos)


def _write_int8_manifest(
    source: dict,
    onnx_path: Path,
    model_name: str | None,
    quant_format: str,
    activation_type: str,
    calibration_count: int,
    agreement: float,
    agreement_count: int,
) -> Path:
    inputs, outputs = describe_onnx_tensors(onnx_path)
    manifest = build_manifest(
        model_name=model_name or f"{source['model_name']}_int8",
        model_version=source["model_version"],
        task=source["task"],
        onnx_file=onnx_path.name,
        onnx_sha256=file_sha256(onnx_path),
        inputs=inputs,
        outputs=outputs,
        labels=source["labels"],
        preprocessing=source["preprocessing"],
        training=source["training"],
        quantization={
            "method": "onnxruntime.quantization.quantize_static",
            "onnxruntime_version": ort.__version__,
            "format": quant_format,
            "activation_type": activation_type,
            "weight_type": "int8",
            "per_channel": True,
            "calibration_method": "MinMax",
            "calibration_images": calibration_count,
            "top1_agreement_with_fp32": agreement,
            "agreement_images": agreement_count,
            "source_model": source["model_name"],
            "source_onnx_sha256": source["onnx_sha256"],
        },
    )
    return write_manifest(onnx_path.parent, manifest)
