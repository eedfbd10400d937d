"""The facade's settings against the training side's contracts."""

from frontend_api.settings import HM_PRODUCT_GROUPS, Settings
from training.labels import PRODUCT_GROUPS


def test_product_groups_match_training_labels():
    # The facade keeps its own copy because the serving image carries no training code.
    assert HM_PRODUCT_GROUPS == PRODUCT_GROUPS


def test_product_groups_env_splits_on_commas(monkeypatch):
    monkeypatch.setenv("FPS_PRODUCT_GROUPS", "Shoes, Nightwear")

    assert Settings().product_groups == ("Shoes", "Nightwear")
