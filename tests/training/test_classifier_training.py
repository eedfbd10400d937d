"""Short real training runs of both architectures on the bundled sample."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from tests.training.conftest import smoke_config
from training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from training.classifier import METRICS_NAME, ClassifierConfig, compare_runs, train_classifier
from training.engine import EarlyStopping
from training.labels import PRODUCT_GROUPS
from training.transforms import eval_transform

ARCHS = ("simplecnn", "resnet50")
PLOTS = ("class_distribution.png", "training_curves.png", "confusion_matrix.png", "val_predictions.png")


def read_metrics(run_dir):
    return json.loads((run_dir / METRICS_NAME).read_text())


@pytest.mark.parametrize("arch", ARCHS)
def test_run_writes_outputs(smoke_runs, arch):
    run_dir = smoke_runs[arch]

    for name in (CHECKPOINT_NAME, METRICS_NAME, *PLOTS):
        path = run_dir / name
        assert path.is_file(), name
        assert path.stat().st_size > 0, name
    for name in PLOTS:
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


@pytest.mark.parametrize("arch", ARCHS)
def test_run_metrics_are_finite(smoke_runs, arch):
    metrics = read_metrics(smoke_runs[arch])

    assert len(metrics["epochs"]) == 1
    assert metrics["epochs"][0]["train_batches"] == 3
    for key in ("train_loss", "val_loss", "val_accuracy", "val_macro_f1", "learning_rate", "seconds"):
        assert math.isfinite(metrics["epochs"][0][key]), key
    for key, value in metrics["final"].items():
        assert math.isfinite(value), key
    assert 0 <= metrics["final"]["val_accuracy"] <= 1
    assert metrics["elapsed_seconds"] > 0


@pytest.mark.parametrize("arch", ARCHS)
def test_run_metrics_describe_classes(smoke_runs, arch):
    metrics = read_metrics(smoke_runs[arch])

    assert metrics["labels"] == list(PRODUCT_GROUPS)
    assert set(metrics["per_class"]) == set(PRODUCT_GROUPS)
    for label, scores in metrics["per_class"].items():
        assert set(scores) == {"precision", "recall", "f1", "support"}, label
    counts = metrics["class_counts"]
    assert "Unknown" in counts["before_filter"]
    assert set(counts["after_filter"]) == set(PRODUCT_GROUPS)
    val_images = sum(counts["val"].values())
    assert np.array(metrics["confusion_matrix"]).sum() == val_images
    assert sum(scores["support"] for scores in metrics["per_class"].values()) == val_images


@pytest.mark.parametrize("arch", ARCHS)
def test_checkpoint_reloads_and_predicts(smoke_runs, sample_root, arch):
    model, metadata = load_checkpoint(smoke_runs[arch] / CHECKPOINT_NAME)

    assert metadata["arch"] == arch
    assert metadata["labels"] == list(PRODUCT_GROUPS)
    assert metadata["image_size"] == 32
    assert metadata["metrics"]["val_accuracy"] == read_metrics(smoke_runs[arch])["final"]["val_accuracy"]
    photo = next((sample_root / "hm" / "images").rglob("*.jpg"))
    with torch.no_grad():
        logits = model(eval_transform(32)(Image.open(photo).convert("RGB")).unsqueeze(0))
    assert logits.shape == (1, len(PRODUCT_GROUPS))
    assert torch.isfinite(logits).all()


def test_compare_runs_writes_png(smoke_runs, tmp_path):
    path = compare_runs(list(smoke_runs.values()), tmp_path / "compare.png")

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_runs_missing_metrics_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        compare_runs([tmp_path], tmp_path / "compare.png")


def test_time_limit_stops_after_first_epoch(sample_root, tmp_path):
    config = smoke_config(sample_root, tmp_path / "run", "simplecnn", epochs=3, time_limit_minutes=1e-6)

    metrics = read_metrics(train_classifier(config))

    assert metrics["stop_reason"] == "time limit"
    assert len(metrics["epochs"]) == 1
    assert metrics["epochs"][0]["train_batches"] == 1


def test_simplecnn_rejects_pretrained_weights(sample_root, tmp_path):
    with pytest.raises(ValueError, match="--weights none"):
        train_classifier(smoke_config(sample_root, tmp_path / "run", "simplecnn", weights="imagenet"))


def test_config_rejects_unknown_arch():
    with pytest.raises(ValueError, match="resnet50"):
        ClassifierConfig(arch="vgg16")


def test_early_stopping_counts_epochs_since_best():
    stopper = EarlyStopping(patience=2)

    assert stopper.improved(1, 0.5)
    assert not stopper.improved(2, 0.5)
    assert not stopper.should_stop(2)
    assert not stopper.improved(3, 0.4)
    assert stopper.should_stop(3)
    assert stopper.best_epoch == 1


def test_early_stopping_rejects_zero_patience():
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)
