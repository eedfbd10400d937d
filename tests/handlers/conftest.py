"""Handlers initialized from the demo models, as a TorchServe worker initializes them."""

import pytest

from image_handler import ImageClassifierHandler
from model_store.archive import model_config
from price_handler import PriceHandler
from tests.handlers.batch_runner import initialize_handler


@pytest.fixture(scope="module")
def classifier(demo_models):
    """(handler, context) for the demo classifier with the CPU profile's model-config."""
    return initialize_handler(
        ImageClassifierHandler, "fashion_classifier", demo_models.classifier_dir, model_config("classifier")
    )


@pytest.fixture(scope="module")
def price_model(demo_models):
    """(handler, context) for the demo price model with the CPU profile's model-config."""
    return initialize_handler(PriceHandler, "price_regressor", demo_models.price_dir, model_config("price"))
