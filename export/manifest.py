"""The model manifest: the JSON file that describes an exported ONNX model to the server.

Export writes `manifest.json` next to each `model.onnx`, and the archive ships both.
A handler reads the manifest to learn the input names and shapes, the labels in output
order, the preprocessing that training used, and the hash that identifies the ONNX file.
"""

import hashlib
import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import onnx
from onnx import helper

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"

TASK_IMAGE_CLASSIFICATION = "image-classification"
TASK_PRICE_REGRESSION = "price-regression"

COMMON_KEYS = ("model_name", "model_version", "task", "onnx_file", "onnx_sha256", "inputs", "outputs", "training")
TASK_KEYS = {
    TASK_IMAGE_CLASSIFICATION: ("labels", "preprocessing"),
    TASK_PRICE_REGRESSION: ("fields", "target"),
}
TENSOR_KEYS = ("name", "shape", "dtype")


class ManifestError(ValueError):
    """A manifest is missing a required key, has a value of the wrong type, or has an unknown schema version."""


def file_sha256(path: Path) -> str:
    """Return the SHA-256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe_onnx_tensors(onnx_path: Path) -> tuple[list[dict], list[dict]]:
    """Read the graph inputs and outputs of an ONNX file as manifest tensor descriptions.

    Each description is {"name", "shape", "dtype"}. A dynamic axis appears under its
    ONNX dim_param name (for example "batch"), a fixed axis as an integer, and an
    unnamed dynamic axis as null. dtype is the NumPy name ("float32") or "string".
    """
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return [_describe_value(value) for value in graph.input], [_describe_value(value) for value in graph.output]


def _describe_value(value: onnx.ValueInfoProto) -> dict:
    tensor_type = value.type.tensor_type
    shape = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            shape.append(dim.dim_value)
        else:
            shape.append(dim.dim_param or None)

    if tensor_type.elem_type == onnx.TensorProto.STRING:
        dtype = "string"
    else:
        dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
    return {"name": value.name, "shape": shape, "dtype": dtype}


def build_manifest(**fields) -> dict:
    """Build a validated manifest from keyword fields, adding schema_version and the creation time.

    Required for every task: model_name, model_version, task, onnx_file, onnx_sha256,
    inputs, outputs and training. An image-classification manifest also needs labels and
    preprocessing, and a price-regression manifest needs fields and target. Extra keys
    are kept. `created` defaults to the current UTC time in ISO 8601 format.
    Raises ManifestError naming the first invalid or missing key.
    """
    if "schema_version" in fields:
        raise ManifestError("build_manifest sets schema_version itself, so remove it from the arguments.")

    manifest = {"schema_version": SCHEMA_VERSION, **fields}
    manifest.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    validate_manifest(manifest)
    return manifest


def validate_manifest(manifest: dict) -> None:
    """Raise ManifestError unless the manifest has every key its task requires, with values of the right type."""
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ManifestError(
            f"Unsupported manifest schema_version {version!r}. This code reads version {SCHEMA_VERSION}. "
            "Export the model again with this version of the project."
        )

    task = manifest.get("task")
    if task not in TASK_KEYS:
        raise ManifestError(f"Invalid manifest task {task!r}. Expected one of: {', '.join(TASK_KEYS)}.")

    missing = [key for key in COMMON_KEYS + TASK_KEYS[task] if key not in manifest]
    if missing:
        raise ManifestError(f"Manifest for task {task!r} is missing required keys: {', '.join(missing)}.")

    for key in ("model_name", "model_version", "onnx_file", "onnx_sha256"):
        _require_type(manifest, key, str)
    _require_type(manifest, "training", dict)

    for key in ("inputs", "outputs"):
        _validate_tensors(key, manifest[key])

    if task == TASK_IMAGE_CLASSIFICATION:
        _validate_classifier(manifest)
    else:
        _validate_price(manifest)


def _require_type(manifest: dict, key: str, expected: type) -> None:
    value = manifest[key]
    if not isinstance(value, expected) or (expected is str and not value):
        raise ManifestError(f"Manifest key {key!r} must be a non-empty {expected.__name__}, got {value!r}.")


def _validate_tensors(key: str, tensors: object) -> None:
    if not isinstance(tensors, list) or not tensors:
        raise ManifestError(f"Manifest key {key!r} must be a non-empty list of tensor descriptions, got {tensors!r}.")
    for tensor in tensors:
        if not isinstance(tensor, dict) or any(name not in tensor for name in TENSOR_KEYS):
            raise ManifestError(f"Each entry of {key!r} needs the keys {', '.join(TENSOR_KEYS)}, got {tensor!r}.")


def _validate_classifier(manifest: dict) -> None:
    labels = manifest["labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(label, str) for label in labels):
        raise ManifestError(f"Manifest key 'labels' must be a non-empty list of strings, got {labels!r}.")
    if len(set(labels)) != len(labels):
        raise ManifestError(f"Manifest labels must be unique, got {labels!r}.")
    _require_type(manifest, "preprocessing", dict)


def _validate_price(manifest: dict) -> None:
    fields = manifest["fields"]
    if not isinstance(fields, list) or not fields:
        raise ManifestError(f"Manifest key 'fields' must be a non-empty list of field descriptions, got {fields!r}.")
    for field in fields:
        if not isinstance(field, dict) or "name" not in field:
            raise ManifestError(f"Each entry of 'fields' needs at least a 'name', got {field!r}.")
    _require_type(manifest, "target", dict)


def write_manifest(directory: Path, manifest: dict) -> Path:
    """Validate the manifest, write it to `directory`/manifest.json and return that path."""
    validate_manifest(manifest)
    path = Path(directory) / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    logger.info("Wrote %s (model %s, task %s)", path, manifest["model_name"], manifest["task"])
    return path


def read_manifest(path: Path) -> dict:
    """Read and validate a manifest from its file or from the model directory that contains it."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"Manifest not found: {path}. Run `python -m export` to create the model directory.")

    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ManifestError(f"Manifest {path} is not valid JSON: {error}") from error
    if not isinstance(manifest, dict):
        raise ManifestError(f"Manifest {path} must contain a JSON object, got {type(manifest).__name__}.")

    validate_manifest(manifest)
    return manifest
