"""TorchServe failures that are not the client's fault, provoked on the real TorchServe by misconfigured facades."""

import httpx
import pytest

from tests.facade_fixtures import start_facade, stop_facade


@pytest.fixture(scope="module")
def misconfigured_facade(torchserve, tmp_path_factory):
    """Start facades against the session's TorchServe with some settings changed; stop them after the module."""
    started = []

    def start(**overrides: str):
        settings_env = {
            "FPS_TORCHSERVE_INFERENCE_URL": torchserve.inference_url,
            "FPS_TORCHSERVE_MANAGEMENT_URL": torchserve.management_url,
            "FPS_TORCHSERVE_INFERENCE_KEY": torchserve.inference_key or "",
            "FPS_TORCHSERVE_MANAGEMENT_KEY": torchserve.management_key or "",
            **overrides,
        }
        facade = start_facade(settings_env, tmp_path_factory.mktemp("facade-misconfigured") / "facade.log")
        started.append(facade)
        return httpx.Client(base_url=facade.base_url, timeout=60)

    yield start
    for facade in started:
        stop_facade(facade)


def classify(client: httpx.Client, photo) -> httpx.Response:
    return client.post("/v1/classify", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")})


def test_wrong_inference_key_is_502(misconfigured_facade, sample_products):
    client = misconfigured_facade(FPS_TORCHSERVE_INFERENCE_KEY="wrong-key", FPS_TORCHSERVE_MANAGEMENT_KEY="wrong-key")
    response = classify(client, sample_products["Shoes"].photo)

    assert response.status_code == 502, response.text
    assert response.json()["error"] == "upstream_failed"
    assert "FPS_TORCHSERVE_INFERENCE_KEY" in response.json()["message"]

    readiness = client.get("/readyz")
    assert readiness.status_code == 503
    assert "FPS_TORCHSERVE_MANAGEMENT_KEY" in readiness.json()["models"]["fashion_classifier"]["detail"]


def test_unknown_model_is_503_with_retry_after(misconfigured_facade, sample_products):
    client = misconfigured_facade(FPS_CLASSIFIER_MODEL="no_such_model", FPS_RETRY_AFTER_S="3")
    response = classify(client, sample_products["Shoes"].photo)

    assert response.status_code == 503, response.text
    assert response.json()["error"] == "model_unavailable"
    assert response.headers["Retry-After"] == "3"
    assert client.get("/readyz").status_code == 503


def test_read_timeout_is_504(misconfigured_facade, sample_products):
    # One millisecond is far below a classifier call through TorchServe, so the read times out.
    client = misconfigured_facade(FPS_READ_TIMEOUT_S="0.001")
    response = classify(client, sample_products["Shoes"].photo)

    assert response.status_code == 504, response.text
    assert response.json()["error"] == "upstream_timeout"
    assert response.headers["Retry-After"] == "1"
