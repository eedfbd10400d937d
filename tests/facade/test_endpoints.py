"""End-to-end tests through the facade, against a real TorchServe serving the demo models.

Each response is compared with what TorchServe itself returns for the same input, so
the tests check the facade's plumbing without depending on how good the small demo
models are.
"""

import base64
import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from training.labels import PRODUCT_GROUPS

CLASSIFIER = "fashion_classifier"
PRICE_MODEL = "price_regressor"


def classify_directly(torchserve_client, photo) -> dict:
    response = torchserve_client.post(f"/predictions/{CLASSIFIER}", content=photo.read_bytes())
    assert response.status_code == 200, response.text
    return response.json()


def price_directly(torchserve_client, item: dict) -> dict:
    response = torchserve_client.post(f"/predictions/{PRICE_MODEL}", json=item)
    assert response.status_code == 200, response.text
    return response.json()


def post_predict(facade_client, product, fields: dict):
    with open(product.photo, "rb") as photo:
        return facade_client.post("/v1/predict", files={"image": (product.photo.name, photo, "image/jpeg")}, data=fields)


def assert_same_top_k(actual: list[dict], expected: list[dict]) -> None:
    assert [entry["label"] for entry in actual] == [entry["label"] for entry in expected]
    # Batches formed by concurrent requests may change the last float bits.
    assert [entry["probability"] for entry in actual] == pytest.approx([entry["probability"] for entry in expected], abs=1e-5)


def assert_valid_category(category: dict) -> None:
    assert category["label"] in PRODUCT_GROUPS
    assert 0.0 <= category["confidence"] <= 1.0
    assert category["label"] == category["top_k"][0]["label"]
    assert category["confidence"] == category["top_k"][0]["probability"]
    probabilities = [entry["probability"] for entry in category["top_k"]]
    assert probabilities == sorted(probabilities, reverse=True)


@pytest.mark.parametrize("group", PRODUCT_GROUPS)
def test_predict_chains_classifier_into_price(group, sample_products, facade_client, torchserve_client):
    product = sample_products[group]
    response = post_predict(facade_client, product, product.text_without_group())
    assert response.status_code == 200, response.text
    body = response.json()

    expected_category = classify_directly(torchserve_client, product.photo)
    assert_valid_category(body["category"])
    assert body["category"]["label"] == expected_category["label"]
    assert_same_top_k(body["category"]["top_k"], expected_category["top_k"])

    # Without a product group the classifier's label is what the price model receives.
    assert body["product_group_source"] == "classifier"
    assert body["product_group"] == body["category"]["label"]
    expected_price = price_directly(torchserve_client, {**product.text_without_group(), "product_group": body["product_group"]})
    assert body["price"]["value"] == pytest.approx(expected_price["price"], rel=1e-6)
    assert math.isfinite(body["price"]["value"])
    assert body["price"]["value"] >= 0

    assert body["model_versions"][CLASSIFIER] == expected_category["model_version"]
    assert body["model_versions"][PRICE_MODEL] == expected_price["model_version"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert body["timing"]["classify_ms"] > 0
    assert body["timing"]["price_ms"] > 0
    assert body["ignored_fields"] == []


def test_predict_with_product_group_prices_given_group(sample_products, facade_client, torchserve_client):
    product = sample_products["Shoes"]
    # A group that differs from the photo's, so using the classifier's label instead would show.
    fields = {**product.text_without_group(), "product_group": "Nightwear"}
    response = post_predict(facade_client, product, fields)
    assert response.status_code == 200, response.text
    body = response.json()

    assert body["product_group_source"] == "request"
    assert body["product_group"] == "Nightwear"
    expected_price = price_directly(torchserve_client, fields)
    assert body["price"]["value"] == pytest.approx(expected_price["price"], rel=1e-6)
    assert body["price"]["unit"] == expected_price["unit"]
    assert body["price"]["currency"] == expected_price["currency"]

    expected_category = classify_directly(torchserve_client, product.photo)
    assert body["category"]["label"] == expected_category["label"]
    assert body["timing"]["classify_ms"] > 0
    assert body["timing"]["price_ms"] > 0


def test_predict_accepts_json_with_base64(sample_products, facade_client):
    product = sample_products["Accessories"]
    multipart = post_predict(facade_client, product, product.text_without_group())
    payload = {**product.text_without_group(), "image_base64": base64.b64encode(product.photo.read_bytes()).decode()}
    response = facade_client.post("/v1/predict", json=payload)
    assert response.status_code == 200, response.text

    assert response.json()["category"] == multipart.json()["category"]
    assert response.json()["price"] == multipart.json()["price"]


def test_predict_lists_fields_price_model_ignores(sample_products, facade_client):
    product = sample_products["Garment Upper body"]
    fields = {**product.text_without_group(), "brand": "H&M", "material": "Cotton"}
    response = post_predict(facade_client, product, fields)
    assert response.status_code == 200, response.text

    assert response.json()["ignored_fields"] == ["brand", "material"]


def test_predict_forwards_client_request_id(sample_products, facade_client):
    product = sample_products["Socks & Tights"]
    with open(product.photo, "rb") as photo:
        response = facade_client.post(
            "/v1/predict",
            files={"image": (product.photo.name, photo, "image/jpeg")},
            data=product.text_without_group(),
            headers={"X-Request-ID": "client-id-42"},
        )
    assert response.status_code == 200, response.text
    assert response.headers["X-Request-ID"] == "client-id-42"
    assert response.json()["request_id"] == "client-id-42"


@pytest.mark.parametrize("group", PRODUCT_GROUPS)
def test_classify_matches_torchserve(group, sample_products, facade_client, torchserve_client):
    product = sample_products[group]
    with open(product.photo, "rb") as photo:
        response = facade_client.post("/v1/classify", files={"image": (product.photo.name, photo, "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()

    expected = classify_directly(torchserve_client, product.photo)
    assert_valid_category(body["category"])
    assert body["category"]["label"] == expected["label"]
    assert_same_top_k(body["category"]["top_k"], expected["top_k"])
    assert body["model_version"] == expected["model_version"]


def test_classify_accepts_json_with_base64(sample_products, facade_client, torchserve_client):
    product = sample_products["Swimwear"]
    encoded = base64.b64encode(product.photo.read_bytes()).decode()
    response = facade_client.post("/v1/classify", json={"image_base64": f"data:image/jpeg;base64,{encoded}"})
    assert response.status_code == 200, response.text

    assert response.json()["category"]["label"] == classify_directly(torchserve_client, product.photo)["label"]


def test_price_single_item(sample_products, facade_client, torchserve_client):
    fields = sample_products["Garment Lower body"].fields
    response = facade_client.post("/v1/price", json=fields)
    assert response.status_code == 200, response.text
    body = response.json()

    assert len(body["prices"]) == 1
    expected = price_directly(torchserve_client, fields)
    assert body["prices"][0]["value"] == pytest.approx(expected["price"], rel=1e-6)
    assert body["prices"][0]["model_version"] == expected["model_version"]
    assert body["timing"]["price_ms"] > 0
    assert body["timing"]["classify_ms"] is None


def test_price_list_keeps_order(sample_products, facade_client, torchserve_client):
    items = [sample_products[group].fields for group in PRODUCT_GROUPS]
    response = facade_client.post("/v1/price", json=items)
    assert response.status_code == 200, response.text
    prices = response.json()["prices"]

    assert len(prices) == len(items)
    for item, price in zip(items, prices):
        assert price["value"] == pytest.approx(price_directly(torchserve_client, item)["price"], rel=1e-6)


def test_readyz_reports_both_models_ready(facade_client):
    response = facade_client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()

    assert body["status"] == "ready"
    assert body["models"][CLASSIFIER]["ready"] is True
    assert body["models"][PRICE_MODEL]["ready"] is True


def test_healthz_returns_ok(facade_client):
    response = facade_client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_metrics_count_requests_and_upstream_calls(sample_products, facade_client):
    product = sample_products["Underwear"]
    assert post_predict(facade_client, product, product.text_without_group()).status_code == 200

    response = facade_client.get("/metrics")
    assert response.status_code == 200
    samples = [sample for family in text_string_to_metric_families(response.text) for sample in family.samples]

    def value(name: str, **labels) -> float:
        matching = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
        return sum(matching)

    assert value("fps_http_requests_total", endpoint="/v1/predict", method="POST", status="200") >= 1
    assert value("fps_http_request_duration_seconds_count", endpoint="/v1/predict") >= 1
    assert value("fps_upstream_requests_total", model=CLASSIFIER, call="classify", outcome="ok") >= 1
    assert value("fps_upstream_requests_total", model=PRICE_MODEL, call="price", outcome="ok") >= 1
    assert value("fps_upstream_request_duration_seconds_count", model=CLASSIFIER, call="classify") >= 1
    assert value("fps_upstream_request_duration_seconds_count", model=PRICE_MODEL, call="price") >= 1


def test_openapi_documents_every_endpoint(facade_client):
    schema = facade_client.get("/openapi.json").json()
    for path in ("/v1/predict", "/v1/classify", "/v1/price", "/healthz", "/readyz", "/metrics"):
        assert path in schema["paths"], path
    predict_body = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in predict_body
    assert "application/json" in predict_body
    assert facade_client.get("/docs").status_code == 200
