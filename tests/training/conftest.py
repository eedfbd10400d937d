"""Short real training runs on the bundled sample, shared by the classifier tests."""

from pathlib import Path

import pytest

from training.classifier import ClassifierConfig, train_classifier

# Tiny images and a few batches keep both runs to seconds on a 2-core CPU; the
# tests check the pipeline's outputs, not the accuracy.
SMOKE_SETTINGS = {"image_size": 32, "epochs": 1, "batch_size": 16, "max_train_batches": 3, "min_class_count": 10, "num_workers": 0}


def smoke_config(sample_root: Path, out_dir: Path, arch: str, **overrides) -> ClassifierConfig:
    """Return a config for a short run of `arch` on the bundled sample."""
    return ClassifierConfig(out_dir=out_dir, data_root=sample_root, arch=arch, **{**SMOKE_SETTINGS, **overrides})


@pytest.fixture(scope="session")
def smoke_runs(sample_root, tmp_path_factory) -> dict[str, Path]:
    """Run folders of one short epoch of each architecture, keyed by arch."""
    root = tmp_path_factory.mktemp("classifier-runs")
    return {arch: train_classifier(smoke_config(sample_root, root / arch, arch)) for arch in ("simplecnn", "resnet50")}
