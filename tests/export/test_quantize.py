"""Tests of the INT8 variant: it loads, runs, is really quantized, and keeps FP32's top-1 on sample photos."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from export.classifier import list_photos, load_batch
from export.manifest import file_sha256, read_manifest
from export.quantize import quantize_classifier, top1_agreement, training_photos
from tests.export.conftest import CALIBRATION_COUNT, IMAGE_SIZE
from training.data import grouped_split, load_labelled_images
from training.labels import PRODUCT_GROUPS


@pytest.mark.parametrize("batch_size", [1, 5])
def test_int8_runs(int8_dir: Path, calibration_photos: list[Path], batch_size: int):
    session = ort.InferenceSession(str(int8_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    images = load_batch(calibration_photos[:batch_size], IMAGE_SIZE).numpy()

    probabilities = session.run(["probabilities"], {"image": images})[0]

    assert probabilities.shape == (batch_size, len(PRODUCT_GROUPS))
    assert probabilities.dtype == np.float32
    # Softmax stays in float32, so the rows sum to 1 as closely as in the FP32 model.
    assert np.abs(probabilities.sum(axis=1) - 1).max() <= 1e-5


def test_int8_graph_is_quantized(int8_dir: Path, fp32_dir: Path):
    model = onnx.load(str(int8_dir / "model.onnx"))
    op_types = {node.op_type for node in model.graph.node}
    int8_weights = [tensor for tensor in model.graph.initializer if tensor.data_type == onnx.TensorProto.INT8]

    assert {"QuantizeLinear", "DequantizeLinear"} <= op_types
    assert len(int8_weights) >= 5
    assert (int8_dir / "model.onnx").stat().st_size < (fp32_dir / "model.onnx").stat().st_size / 2


def test_int8_manifest(int8_dir: Path, fp32_dir: Path):
    manifest = read_manifest(int8_dir)
    source = read_manifest(fp32_dir)

    assert manifest["model_name"] == "fashion_classifier_int8"
    assert manifest["onnx_sha256"] == file_sha256(int8_dir / "model.onnx")
    assert manifest["labels"] == source["labels"]
    assert manifest["preprocessing"] == source["preprocessing"]
    assert manifest["inputs"] == source["inputs"]
    assert manifest["outputs"] == source["outputs"]
    assert manifest["training"] == source["training"]
    assert manifest["quantization"]["source_onnx_sha256"] == source["onnx_sha256"]
    assert manifest["quantization"]["calibration_images"] == CALIBRATION_COUNT


def test_int8_top1_agrees_with_fp32(int8_dir: Path, fp32_dir: Path, sample_images: Path):
    photos = list_photos(sample_images, 96)

    agreement = top1_agreement(fp32_dir / "model.onnx", int8_dir / "model.onnx", photos, IMAGE_SIZE)

    assert agreement >= 0.8, f"INT8 top-1 agrees with FP32 on only {agreement:.1%} of {len(photos)} sample photos"


def test_qoperator_format_runs(tmp_path: Path, fp32_dir: Path, calibration_photos: list[Path]):
    quantize_classifier(fp32_dir, calibration_photos, tmp_path, count=8, quant_format="qoperator")
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    images = load_batch(calibration_photos[:3], IMAGE_SIZE).numpy()

    probabilities = session.run(["probabilities"], {"image": images})[0]

    op_types = {node.op_type for node in onnx.load(str(tmp_path / "model.onnx")).graph.node}
    assert "QLinearConv" in op_types
    assert probabilities.shape == (3, len(PRODUCT_GROUPS))
    assert read_manifest(tmp_path)["quantization"]["format"] == "qoperator"


def test_invalid_format_rejected(tmp_path: Path, fp32_dir: Path, calibration_photos: list[Path]):
    with pytest.raises(ValueError, match="qdq, qoperator"):
        quantize_classifier(fp32_dir, calibration_photos, tmp_path, quant_format="int4")


def test_no_calibration_photos_rejected(tmp_path: Path, fp32_dir: Path):
    with pytest.raises(ValueError, match="No calibration photos"):
        quantize_classifier(fp32_dir, [], tmp_path)


def test_training_photos_exclude_validation(sample_root: Path):
    table = load_labelled_images(sample_root / "hm").table
    _, validation = grouped_split(table)
    validation_photos = {Path(path) for path in validation["path"]}

    photos = set(training_photos(sample_root, list(PRODUCT_GROUPS)))

    assert photos
    assert validation_photos
    assert not photos & validation_photos
    assert photos | validation_photos == {Path(path) for path in table["path"]}
