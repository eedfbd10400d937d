"""model_store.archive: archive contents, generated model-config.yaml and input checks."""

import json
import shutil
import subprocess
import sys
import zipfile

import pytest
import yaml

from model_store.archive import KINDS, ArchiveError, build_archive, model_config
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def archives(model_store_dir) -> dict[str, zipfile.ZipFile]:
    return {kind: zipfile.ZipFile(model_store_dir / f"{spec.model_name}.mar") for kind, spec in KINDS.items()}


@pytest.mark.parametrize("kind", list(KINDS))
def test_archive_contains_model_and_handler_modules(archives, kind):
    spec = KINDS[kind]
    names = set(archives[kind].namelist())
    expected = {"model.onnx", "manifest.json", "model-config.yaml", "MAR-INF/MANIFEST.json", spec.handler, *spec.siblings}
    assert names == expected


@pytest.mark.parametrize("kind", list(KINDS))
def test_archive_handler_imports_only_archive_files(archives, kind, tmp_path):
    archives[kind].extractall(tmp_path)
    module = KINDS[kind].handler.removesuffix(".py")
    # -I ignores PYTHONPATH and the current directory, so only the archive's files and
    # the installed packages are importable, as in a TorchServe worker.
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import {module}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'training', 'export', 'handlers')))"
    )
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_cpu_profile_config(archives):
    config = yaml.safe_load(archives["classifier"].read("model-config.yaml"))
    expected = yaml.safe_load((REPO_ROOT / "model_store" / "config" / "fashion_classifier.yaml").read_text())["cpu"]
    assert config["batchSize"] == expected["batchSize"]
    assert config["maxBatchDelay"] == expected["maxBatchDelay"]
    assert config["minWorkers"] == config["maxWorkers"] == 1
    assert config["responseTimeout"] > 0
    assert config["handler"]["device"] == "cpu"
    assert config["handler"]["top_k"] == 3
    assert "intra_op_threads" in config["handler"]


def test_archive_version_from_manifest(archives, demo_models):
    manifest = json.loads((demo_models.classifier_dir / "manifest.json").read_text())
    mar_manifest = json.loads(archives["classifier"].read("MAR-INF/MANIFEST.json"))
    assert mar_manifest["model"]["modelName"] == "fashion_classifier"
    assert mar_manifest["model"]["modelVersion"] == manifest["model_version"]


def test_gpu_profile_uses_cuda_and_larger_batches():
    cpu = model_config("classifier", "cpu")
    gpu = model_config("classifier", "gpu")
    assert gpu["handler"]["device"] == "cuda"
    assert gpu["batchSize"] > cpu["batchSize"]
    assert model_config("price", "gpu")["handler"]["device"] == "cpu"


def test_overrides_keep_other_handler_keys():
    config = model_config("classifier", overrides={"batchSize": 2, "handler": {"top_k": 5}})
    assert config["batchSize"] == 2
    assert config["handler"]["top_k"] == 5
    assert config["handler"]["device"] == "cpu"


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"batchSize": 0}, "batchSize must be a positive integer"),
        ({"maxBatchDelay": -1}, "maxBatchDelay"),
        ({"minWorkers": 3, "maxWorkers": 2}, "larger than maxWorkers"),
        ({"handler": {"device": "tpu"}}, "handler.device"),
    ],
)
def test_invalid_overrides_rejected(overrides, message):
    with pytest.raises(ArchiveError, match=message):
        model_config("classifier", overrides=overrides)


def test_unknown_kind_rejected(demo_models, tmp_path):
    with pytest.raises(ArchiveError, match="Unknown archive kind"):
        build_archive(demo_models.classifier_dir, "detector", tmp_path)


def test_wrong_task_rejected(demo_models, tmp_path):
    with pytest.raises(ArchiveError, match="price-regression"):
        build_archive(demo_models.price_dir, "classifier", tmp_path)


def test_missing_onnx_rejected(demo_models, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(demo_models.classifier_dir, model_dir)
    (model_dir / "model.onnx").unlink()
    with pytest.raises(ArchiveError, match="model.onnx not found"):
        build_archive(model_dir, "classifier", tmp_path / "store")
