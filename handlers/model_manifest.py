"""The model manifest (manifest.json) that export writes next to each ONNX file.

Handlers read everything they need about the model from it: input and output names,
labels, preprocessing, price fields and target. Loading also checks that the ONNX file
is the one the manifest describes, so a mixed-up archive fails at worker start instead
of serving wrong predictions.
"""

import hashlib
import json
from pathlib import Path

MANIFEST_NAME = "manifest.json"
SUPPORTED_SCHEMA_VERSION = 1
TASKS = ("image-classification", "price-regression")

_REQUIRED_KEYS = {
    "image-classification": ("model_name", "model_version", "onnx_file", "inputs", "outputs", "labels", "preprocessing"),
    "price-regression": ("model_name", "model_version", "onnx_file", "inputs", "outputs", "fields", "target"),
}


class ManifestError(ValueError):
    """The manifest is missing, malformed or does not match its ONNX file."""


def load_manifest(model_dir: Path, expected_task: str) -> dict:
    """Read and validate the manifest in `model_dir`; raise ManifestError naming what is wrong."""
    path = Path(model_dir) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ManifestError(f"{path} not found; build the archive with `python -m model_store build`.") from error
    except json.JSONDecodeError as error:
        raise ManifestError(f"{path} is not valid JSON: {error}") from error

    version = manifest.get("schema_version")
    if version != SUPPORTED_SCHEMA_VERSION:
        raise ManifestError(
            f"{path} has schema_version {version!r}; this handler reads version {SUPPORTED_SCHEMA_VERSION}. "
            "Re-export the model with the matching export code."
        )

    task = manifest.get("task")
    if task != expected_task:
        raise ManifestError(f"{path} describes a {task!r} model, but this handler serves {expected_task!r} models.")

    missing = [key for key in _REQUIRED_KEYS[expected_task] if key not in manifest]
    if missing:
        raise ManifestError(f"{path} is missing the keys {missing}; re-export the model.")
    return manifest


def onnx_path(model_dir: Path, manifest: dict) -> Path:
    """Return the ONNX file of the manifest after checking that its SHA-256 matches `onnx_sha256`."""
    path = Path(model_dir) / manifest["onnx_file"]
    if not path.is_file():
        raise ManifestError(f"ONNX file {path} named in the manifest not found.")

    expected = manifest.get("onnx_sha256")
    if expected is None:
        raise ManifestError(f"The manifest in {model_dir} has no onnx_sha256; re-export the model.")
    actual = file_sha256(path)
    if actual != expected:
        raise ManifestError(
            f"{path} has SHA-256 {actual}, but the manifest expects {expected}. "
            "The archive mixes files from different exports; rebuild it from one export folder."
        )
    return path


def file_sha256(path: Path) -> str:
    """Compute the hex SHA-256 of a file, reading it in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
