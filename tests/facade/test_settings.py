"""The facade's settings against the training side's contracts."""

import pytest
from pydantic import ValidationError

from frontend_api.settings import HM_PRODUCT_GROUPS, Settings
from training.labels import PRODUCT_GROUPS


def test_product_groups_match_training_labels():
    # The facade keeps its own copy because the serving image carries no training code.
    assert HM_PRODUCT_GROUPS == PRODUCT_GROUPS


def test_product_groups_env_splits_on_commas(monkeypatch):
    monkeypatch.setenv("FPS_PRODUCT_GROUPS", "Shoes, Nightwear")

    assert Settings().product_groups == ("Shoes", "Nightwear")


def test_key_newline_is_stripped(monkeypatch):
    # A key copied from a secret file often keeps the file's final newline.
    monkeypatch.setenv("FPS_TORCHSERVE_INFERENCE_KEY", "Ab3xYz\n")

    assert Settings().torchserve_inference_key.get_secret_value() == "Ab3xYz"


def test_blank_key_means_no_key(monkeypatch):
    monkeypatch.setenv("FPS_TORCHSERVE_MANAGEMENT_KEY", " \n")

    assert Settings().torchserve_management_key is None


def test_key_control_character_rejected(monkeypatch):
    monkeypatch.setenv("FPS_TORCHSERVE_INFERENCE_KEY", "Ab3\x01Yz")

    with pytest.raises(ValidationError) as raised:
        Settings()

    message = str(raised.value)
    assert "FPS_TORCHSERVE_INFERENCE_KEY contains a control character" in message
    assert "key_file.json" in message
    assert "Ab3" not in message
