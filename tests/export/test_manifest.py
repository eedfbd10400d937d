"""Tests of the manifest format: building, validation, writing, reading and hashing."""

import hashlib
import json
from datetime import datetime
from pathlib import Path

import pytest

from export.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    ManifestError,
    build_manifest,
    file_sha256,
    read_manifest,
    write_manifest,
)


def classifier_fields() -> dict:
    return {
        "model_name": "fashion_classifier",
        "model_version": "1.0",
        "task": "image-classification",
        "onnx_file": "model.onnx",
        "onnx_sha256": "0" * 64,
        "inputs": [{"name": "image", "shape": ["batch", 3, 64, 64], "dtype": "float32"}],
        "outputs": [{"name": "probabilities", "shape": ["batch", 2], "dtype": "float32"}],
        "labels": ["Shoes", "Socks & Tights"],
        "preprocessing": {"resize": [64, 64]},
        "training": {"run": "demo", "arch": "simplecnn", "metrics": {}},
    }


def price_fields() -> dict:
    return {
        "model_name": "price_regressor",
        "model_version": "1.0",
        "task": "price-regression",
        "onnx_file": "model.onnx",
        "onnx_sha256": "0" * 64,
        "inputs": [{"name": "name", "shape": ["batch", 1], "dtype": "string"}],
        "outputs": [{"name": "variable", "shape": ["batch", 1], "dtype": "float32"}],
        "fields": [{"name": "name", "kind": "text", "required": True, "max_length": 200}],
        "target": {"transform": "log1p", "unit": "normalised price", "currency": None},
        "training": {"run": "demo", "metrics": {}},
    }


@pytest.mark.parametrize("fields", [classifier_fields(), price_fields()], ids=["classifier", "price"])
def test_build_adds_version_and_time(fields):
    manifest = build_manifest(**fields)

    assert manifest["schema_version"] == SCHEMA_VERSION
    created = datetime.fromisoformat(manifest["created"])
    assert created.tzinfo is not None
    for key, value in fields.items():
        assert manifest[key] == value


@pytest.mark.parametrize(
    ("fields", "missing"),
    [
        (classifier_fields(), "labels"),
        (classifier_fields(), "preprocessing"),
        (classifier_fields(), "onnx_sha256"),
        (price_fields(), "fields"),
        (price_fields(), "target"),
        (price_fields(), "inputs"),
    ],
)
def test_build_rejects_missing_key(fields, missing):
    del fields[missing]

    with pytest.raises(ManifestError, match=missing):
        build_manifest(**fields)


def test_build_rejects_unknown_task():
    fields = classifier_fields()
    fields["task"] = "object-detection"

    with pytest.raises(ManifestError, match="object-detection"):
        build_manifest(**fields)


def test_build_rejects_duplicate_labels():
    fields = classifier_fields()
    fields["labels"] = ["Shoes", "Shoes"]

    with pytest.raises(ManifestError, match="unique"):
        build_manifest(**fields)


def test_build_rejects_tensor_without_dtype():
    fields = classifier_fields()
    fields["inputs"] = [{"name": "image", "shape": ["batch", 3, 64, 64]}]

    with pytest.raises(ManifestError, match="dtype"):
        build_manifest(**fields)


def test_build_rejects_schema_version_argument():
    with pytest.raises(ManifestError, match="schema_version"):
        build_manifest(schema_version=2, **classifier_fields())


def test_write_read_round_trip(tmp_path: Path):
    manifest = build_manifest(**classifier_fields())

    path = write_manifest(tmp_path, manifest)

    assert path == tmp_path / MANIFEST_NAME
    assert read_manifest(tmp_path) == manifest
    assert read_manifest(path) == manifest


def test_read_rejects_other_schema_version(tmp_path: Path):
    manifest = build_manifest(**classifier_fields())
    manifest["schema_version"] = SCHEMA_VERSION + 1
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")

    with pytest.raises(ManifestError, match="schema_version"):
        read_manifest(tmp_path)


def test_read_rejects_invalid_json(tmp_path: Path):
    (tmp_path / MANIFEST_NAME).write_text("{not json", encoding="utf-8")

    with pytest.raises(ManifestError, match="not valid JSON"):
        read_manifest(tmp_path)


def test_read_missing_manifest(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="Manifest not found"):
        read_manifest(tmp_path)


def test_sha256_over_several_chunks(tmp_path: Path):
    # 2.5 MiB spans three 1 MiB reads, so a chunking bug would change the digest.
    data = bytes(range(256)) * (10 * 1024)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)

    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
