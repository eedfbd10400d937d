"""Shared fixtures: where the bundled sample and the full data set are."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_ROOT = REPO_ROOT / "training" / "sample"
FULL_DATA_ROOT = Path(os.environ.get("FPS_DATA_ROOT", REPO_ROOT.parent / "shared" / "data"))

# Session fixtures that build models and start servers live in their own modules.
pytest_plugins = ["tests.serving_fixtures", "tests.facade_fixtures"]


@pytest.fixture(scope="session")
def sample_root() -> Path:
    """The bundled real sample, in the Kaggle layout."""
    return SAMPLE_ROOT


@pytest.fixture(scope="session")
def full_data_root() -> Path:
    """The full data set; tests that use it are skipped when it is absent."""
    if not (FULL_DATA_ROOT / "hm" / "articles.csv").is_file():
        pytest.skip(f"full data set not found at {FULL_DATA_ROOT}; set FPS_DATA_ROOT to run this test")
    return FULL_DATA_ROOT
