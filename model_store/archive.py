"""Model archives (.mar) for TorchServe, built with torch-model-archiver.

An archive contains the ONNX file, the export's manifest.json, the handler module with
its sibling modules from handlers/, and a model-config.yaml generated from a profile
in model_store/config/. TorchServe unpacks the archive and puts its files on the
worker's sys.path, so the handler imports its siblings as top-level modules.
"""

import copy
import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
HANDLERS_DIR = REPO_ROOT / "handlers"
CONFIG_DIR = PACKAGE_DIR / "config"

MANIFEST_NAME = "manifest.json"
ONNX_NAME = "model.onnx"
MODEL_CONFIG_NAME = "model-config.yaml"
PROFILES = ("cpu", "gpu")

_COMMON_MODULES = ("handler_common.py", "handler_errors.py", "model_manifest.py", "onnx_session.py", "request_body.py")


@dataclass(frozen=True)
class ArchiveKind:
    """Contents of one model's archive: model name, manifest task, handler module and its sibling modules."""

    model_name: str
    task: str
    handler: str
    siblings: tuple[str, ...]


KINDS = {
    "classifier": ArchiveKind(
        model_name="fashion_classifier",
        task="image-classification",
        handler="image_handler.py",
        siblings=(*_COMMON_MODULES, "image_decoding.py", "image_preprocessing.py"),
    ),
    "price": ArchiveKind(
        model_name="price_regressor",
        task="price-regression",
        handler="price_handler.py",
        siblings=(*_COMMON_MODULES, "price_request.py"),
    ),
}

# Positive integers TorchServe requires in model-config.yaml.
_POSITIVE_KEYS = ("minWorkers", "maxWorkers", "batchSize", "responseTimeout")


class ArchiveError(RuntimeError):
    """The model folder or the settings cannot make a valid archive, or torch-model-archiver failed."""


def model_config(kind: str, profile: str = "cpu", overrides: dict | None = None) -> dict:
    """Return the model-config.yaml settings for `kind` from its profile, with `overrides` applied.

    `overrides` sets top-level keys (for example {"batchSize": 4}); a "handler" dict in
    it updates single keys of the handler section and keeps the others.
    """
    spec = _kind(kind)
    if profile not in PROFILES:
        raise ArchiveError(f"Unknown profile {profile!r}; use one of {', '.join(PROFILES)}.")

    template_path = CONFIG_DIR / f"{spec.model_name}.yaml"
    profiles = yaml.safe_load(template_path.read_text(encoding="utf-8"))
    config = copy.deepcopy(profiles[profile])

    overrides = copy.deepcopy(overrides or {})
    handler_overrides = overrides.pop("handler", {})
    config.update(overrides)
    config["handler"] = {**config.get("handler", {}), **handler_overrides}

    _validate_config(config)
    return config


def build_archive(
    model_dir: Path, kind: str, store_dir: Path, overrides: dict | None = None, profile: str = "cpu"
) -> Path:
    """Pack the exported model in `model_dir` into `store_dir`/<model name>.mar and return its path.

    `kind` is "classifier" or "price". `model_dir` must contain model.onnx and
    manifest.json from export, and the manifest's task must match `kind`. An existing
    archive of the same name is replaced.
    """
    spec = _kind(kind)
    model_dir = Path(model_dir)
    store_dir = Path(store_dir)
    version = _check_model_dir(model_dir, spec)
    config = model_config(kind, profile, overrides)

    store_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mar-build-") as build_dir:
        config_path = Path(build_dir) / MODEL_CONFIG_NAME
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

        extra_files = [HANDLERS_DIR / name for name in spec.siblings] + [model_dir / MANIFEST_NAME]
        command = [
            sys.executable, "-m", "model_archiver.model_packaging",
            "--model-name", spec.model_name,
            "--version", version,
            "--serialized-file", str(model_dir / ONNX_NAME),
            "--handler", str(HANDLERS_DIR / spec.handler),
            "--extra-files", ",".join(str(path) for path in extra_files),
            "--config-file", str(config_path),
            "--export-path", str(store_dir),
            "--force",
        ]  # fmt: skip
        _run_archiver(command)

    archive = store_dir / f"{spec.model_name}.mar"
    if not archive.is_file():
        raise ArchiveError(f"torch-model-archiver finished but {archive} does not exist.")
    logger.info("Built %s (version %s, profile %s, %.1f MB)", archive, version, profile, archive.stat().st_size / 1e6)
    return archive


def _kind(kind: str) -> ArchiveKind:
    if kind not in KINDS:
        raise ArchiveError(f"Unknown archive kind {kind!r}; use one of {', '.join(KINDS)}.")
    return KINDS[kind]


def _check_model_dir(model_dir: Path, spec: ArchiveKind) -> str:
    """Check that model_dir contains a matching export and return its model version."""
    for name in (ONNX_NAME, MANIFEST_NAME):
        if not (model_dir / name).is_file():
            raise ArchiveError(f"{model_dir / name} not found; export the model into {model_dir} first.")

    manifest = json.loads((model_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    if manifest.get("task") != spec.task:
        raise ArchiveError(
            f"{model_dir} contains a {manifest.get('task')!r} model, but the {spec.model_name} archive needs {spec.task!r}."
        )
    if manifest.get("onnx_file") != ONNX_NAME:
        raise ArchiveError(f"The manifest in {model_dir} names {manifest.get('onnx_file')!r}; archives expect {ONNX_NAME}.")
    return str(manifest["model_version"])


def _validate_config(config: dict) -> None:
    for key in _POSITIVE_KEYS:
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ArchiveError(f"{key} must be a positive integer, got {value!r}.")
    delay = config.get("maxBatchDelay")
    if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
        raise ArchiveError(f"maxBatchDelay must be an integer number of milliseconds >= 0, got {delay!r}.")
    if config["minWorkers"] > config["maxWorkers"]:
        raise ArchiveError(f"minWorkers ({config['minWorkers']}) is larger than maxWorkers ({config['maxWorkers']}).")
    if config["handler"].get("device") not in ("cpu", "cuda"):
        raise ArchiveError(f"handler.device must be cpu or cuda, got {config['handler'].get('device')!r}.")


def _run_archiver(command: list[str]) -> None:
    logger.debug("Running %s", " ".join(command))
    # torch-model-archiver 0.12 stages files in $TMPDIR/<model name>, so two builds of the
    # same model at once would delete each other's files; each build gets its own TMPDIR.
    with tempfile.TemporaryDirectory(prefix="model-archiver-") as staging:
        environment = {**os.environ, "TMPDIR": staging}
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, env=environment)
    if result.returncode != 0:
        raise ArchiveError(
            f"torch-model-archiver exited with status {result.returncode}:\n{result.stderr.strip() or result.stdout.strip()}"
        )
