"""Tests of the classifier export: parity with PyTorch, dynamic batch, manifest contents and failure paths."""

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import model_manifest
from export.classifier import (
    PARITY_BATCH_SIZES,
    PARITY_TOLERANCE,
    ParityError,
    SoftmaxClassifier,
    check_parity,
    export_classifier,
    list_photos,
    load_batch,
)
from export.manifest import describe_onnx_tensors, file_sha256, read_manifest
from tests.export.conftest import CHECKPOINT_METRICS, IMAGE_SIZE
from training.checkpoint import load_checkpoint
from training.transforms import preprocessing_spec


def onnx_session(model_dir: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch_size", PARITY_BATCH_SIZES)
def test_parity_with_pytorch(fp32_dir: Path, checkpoint_path: Path, parity_photos: list[Path], batch_size: int):
    model, _ = load_checkpoint(checkpoint_path)
    images = load_batch(parity_photos[:batch_size], IMAGE_SIZE)
    with torch.no_grad():
        expected = SoftmaxClassifier(model)(images).numpy()

    actual = onnx_session(fp32_dir).run(["probabilities"], {"image": images.numpy()})[0]

    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= PARITY_TOLERANCE


def test_dynamic_batch_in_onnxruntime(fp32_dir: Path, parity_photos: list[Path]):
    session = onnx_session(fp32_dir)
    assert session.get_inputs()[0].shape == ["batch", 3, IMAGE_SIZE, IMAGE_SIZE]

    images = load_batch(parity_photos, IMAGE_SIZE).numpy()
    full = session.run(["probabilities"], {"image": images})[0]
    for batch_size in (1, 3, len(images)):
        probabilities = session.run(["probabilities"], {"image": images[:batch_size]})[0]
        assert probabilities.shape == (batch_size, 9)
        # Each row depends only on its own image, whatever the batch size.
        assert np.abs(probabilities - full[:batch_size]).max() <= 1e-5


def test_output_is_probabilities(fp32_dir: Path, parity_photos: list[Path]):
    images = load_batch(parity_photos, IMAGE_SIZE).numpy()

    probabilities = onnx_session(fp32_dir).run(["probabilities"], {"image": images})[0]

    assert probabilities.dtype == np.float32
    assert (probabilities >= 0).all()
    assert np.abs(probabilities.sum(axis=1) - 1).max() <= 1e-5


def test_manifest_contents(fp32_dir: Path, checkpoint_path: Path):
    manifest = read_manifest(fp32_dir)
    _, metadata = load_checkpoint(checkpoint_path)

    assert manifest["model_name"] == "fashion_classifier"
    assert manifest["task"] == "image-classification"
    assert manifest["onnx_file"] == "model.onnx"
    assert manifest["labels"] == metadata["labels"]
    assert manifest["inputs"] == [{"name": "image", "shape": ["batch", 3, IMAGE_SIZE, IMAGE_SIZE], "dtype": "float32"}]
    assert manifest["outputs"] == [{"name": "probabilities", "shape": ["batch", 9], "dtype": "float32"}]
    assert manifest["training"]["arch"] == "simplecnn"
    assert manifest["training"]["run"] == checkpoint_path.parent.name
    assert manifest["training"]["metrics"] == CHECKPOINT_METRICS
    assert manifest["export"]["parity_max_abs_difference"] <= PARITY_TOLERANCE


def test_manifest_preprocessing_matches_training(fp32_dir: Path):
    assert read_manifest(fp32_dir)["preprocessing"] == preprocessing_spec(IMAGE_SIZE)


def test_manifest_hash_matches_onnx_file(fp32_dir: Path):
    manifest = read_manifest(fp32_dir)
    data = (fp32_dir / "model.onnx").read_bytes()

    assert manifest["onnx_sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["onnx_sha256"] == file_sha256(fp32_dir / "model.onnx")


def test_handler_loader_accepts_export(fp32_dir: Path):
    manifest = model_manifest.load_manifest(fp32_dir, "image-classification")

    assert model_manifest.onnx_path(fp32_dir, manifest) == fp32_dir / "model.onnx"


def test_onnx_file_is_self_contained(fp32_dir: Path):
    model = onnx.load(str(fp32_dir / "model.onnx"), load_external_data=False)

    assert sorted(path.name for path in fp32_dir.iterdir()) == ["manifest.json", "model.onnx"]
    assert all(tensor.data_location != onnx.TensorProto.EXTERNAL for tensor in model.graph.initializer)
    onnx.checker.check_model(model)


def test_describe_onnx_tensors(fp32_dir: Path):
    inputs, outputs = describe_onnx_tensors(fp32_dir / "model.onnx")

    assert inputs == [{"name": "image", "shape": ["batch", 3, IMAGE_SIZE, IMAGE_SIZE], "dtype": "float32"}]
    assert outputs == [{"name": "probabilities", "shape": ["batch", 9], "dtype": "float32"}]


def test_parity_fails_for_other_model(fp32_dir: Path, checkpoint_path: Path, parity_photos: list[Path]):
    model, _ = load_checkpoint(checkpoint_path)
    with torch.no_grad():
        # Raising one class's bias shifts that class's probability on every photo.
        model.head[-1].bias[0] += 1.0
    images = load_batch(parity_photos, IMAGE_SIZE)

    with pytest.raises(ParityError, match="batch size 1"):
        check_parity(fp32_dir / "model.onnx", model, images)


def test_parity_fails_for_tampered_onnx(tmp_path: Path, fp32_dir: Path, checkpoint_path: Path, parity_photos: list[Path]):
    onnx_model = onnx.load(str(fp32_dir / "model.onnx"))
    head_weight = next(tensor for tensor in onnx_model.graph.initializer if tensor.name.endswith("head.2.weight"))
    weights = onnx.numpy_helper.to_array(head_weight)
    head_weight.CopyFrom(onnx.numpy_helper.from_array(weights * 3, head_weight.name))
    tampered = tmp_path / "model.onnx"
    onnx.save(onnx_model, str(tampered))
    model, _ = load_checkpoint(checkpoint_path)

    with pytest.raises(ParityError, match="over the tolerance"):
        check_parity(tampered, model, load_batch(parity_photos, IMAGE_SIZE))


def test_export_removes_model_on_parity_failure(tmp_path: Path, checkpoint_path: Path, parity_photos: list[Path]):
    export_classifier(checkpoint_path, tmp_path, parity_images=parity_photos)
    assert (tmp_path / "manifest.json").is_file()

    # A negative tolerance cannot be met, so the export must fail after writing model.onnx.
    with pytest.raises(ParityError):
        export_classifier(checkpoint_path, tmp_path, parity_images=parity_photos, tolerance=-1.0)

    assert not (tmp_path / "model.onnx").exists()
    assert not (tmp_path / "manifest.json").exists()


def test_parity_needs_enough_images(fp32_dir: Path, checkpoint_path: Path, parity_photos: list[Path]):
    model, _ = load_checkpoint(checkpoint_path)
    images = load_batch(parity_photos[:3], IMAGE_SIZE)

    with pytest.raises(ValueError, match="at least 7 images"):
        check_parity(fp32_dir / "model.onnx", model, images)


def test_list_photos_too_few(tmp_path: Path, parity_photos: list[Path]):
    for photo in parity_photos[:2]:
        (tmp_path / photo.name).write_bytes(photo.read_bytes())

    with pytest.raises(FileNotFoundError, match="Found 2 JPEG photos"):
        list_photos(tmp_path, 7)


def test_list_photos_spreads_over_folders(sample_images: Path):
    photos = list_photos(sample_images, 7)

    assert len(set(photos)) == 7
    assert len({photo.parent for photo in photos}) > 1
