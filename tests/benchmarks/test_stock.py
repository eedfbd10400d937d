"""The stock-handler archive: its files, its weights, and a real TorchServe serving it."""

import importlib.util
import json
import zipfile

import httpx
import pytest
import torch
from ts.utils.util import list_classes_from_module

from benchmarks.artifacts import random_resnet50_checkpoint
from benchmarks.stock import STOCK_MODEL_NAME, build_stock_archive, read_resnet50_checkpoint, write_stock_files
from model_store.torchserve import ServerConfig, TorchServe
from training.checkpoint import load_checkpoint, save_checkpoint
from training.labels import PRODUCT_GROUPS
from training.models import build_model


@pytest.fixture(scope="module")
def resnet50_checkpoint(tmp_path_factory):
    return random_resnet50_checkpoint(tmp_path_factory.mktemp("resnet50") / "model.pt")


@pytest.fixture(scope="module")
def stock_archive(resnet50_checkpoint, tmp_path_factory):
    return build_stock_archive(resnet50_checkpoint, tmp_path_factory.mktemp("stock_store"), batch_size=2, max_batch_delay_ms=5)


def test_stock_archive_contents(stock_archive):
    with zipfile.ZipFile(stock_archive) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("MAR-INF/MANIFEST.json"))
        index_to_name = json.loads(archive.read("index_to_name.json"))
        model_config = archive.read("model-config.yaml").decode()

    assert {"stock_resnet50.py", "stock_resnet50.pth", "index_to_name.json", "model-config.yaml"} <= names
    assert manifest["model"]["handler"] == "image_classifier"
    assert manifest["model"]["modelName"] == STOCK_MODEL_NAME
    assert index_to_name == {str(index): label for index, label in enumerate(PRODUCT_GROUPS)}
    assert "batchSize: 2" in model_config
    assert "profile: true" in model_config


def test_stock_model_file_loads_same_weights(resnet50_checkpoint, tmp_path):
    paths = write_stock_files(read_resnet50_checkpoint(resnet50_checkpoint), tmp_path)

    # Load the model file as TorchServe's eager-mode loader does: one class, built with no arguments.
    spec = importlib.util.spec_from_file_location("stock_resnet50", paths["model_file"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    classes = list_classes_from_module(module)
    assert len(classes) == 1
    stock_model = classes[0]()
    stock_model.load_state_dict(torch.load(paths["serialized_file"], weights_only=True))
    stock_model.eval()

    project_model, _ = load_checkpoint(resnet50_checkpoint)
    batch = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(stock_model(batch), project_model(batch))


def test_stock_archive_rejects_other_architectures(tmp_path):
    checkpoint = tmp_path / "model.pt"
    save_checkpoint(checkpoint, build_model("simplecnn", len(PRODUCT_GROUPS)), "simplecnn", list(PRODUCT_GROUPS), 64, {})

    with pytest.raises(ValueError, match="ResNet50"):
        build_stock_archive(checkpoint, tmp_path / "store")


def test_stock_handler_answers_with_top5_labels(stock_archive, sample_root, tmp_path):
    photo = sorted((sample_root / "hm" / "images").rglob("*.jpg"))[0].read_bytes()
    config = ServerConfig(model_store=stock_archive.parent, models=(STOCK_MODEL_NAME,)).with_free_ports()

    with TorchServe(config, tmp_path / "torchserve") as server:
        response = httpx.post(
            f"{server.inference_url}/predictions/{STOCK_MODEL_NAME}",
            content=photo,
            headers=server.inference_headers(),
            timeout=60,
        )

    assert response.status_code == 200, response.text
    probabilities = response.json()
    assert len(probabilities) == 5
    assert set(probabilities) <= set(PRODUCT_GROUPS)
    assert 0 < sum(probabilities.values()) <= 1.0 + 1e-6
