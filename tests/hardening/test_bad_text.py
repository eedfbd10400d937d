"""Awkward and invalid product text through the facade against the session's TorchServe.

Valid but awkward text (empty, emoji, accents, number-like strings) gets 200 with a
finite, non-negative price; so does a 100 KB description, which the facade truncates.
Wrong JSON types, unknown fields and over-long names or categories get a 4xx that
names the field. No case may produce a 5xx or restart the price worker.
"""

import json
import math

import httpx
import pytest

from frontend_api.archives import read_archive_manifest
from frontend_api.schemas import MAX_TEXT_CHARS, PRICED_DESCRIPTION_CHARS
from tests.hardening.conftest import CLASSIFIER, PRICE_MODEL, assert_no_stack_trace, worker_pids

HUNDRED_KB = 100 * 1024


@pytest.fixture(scope="module")
def price_field_limits(model_store_dir) -> dict[str, int]:
    """The price handler's max_length per field, from the served archive's manifest."""
    manifest = read_archive_manifest(model_store_dir / f"{PRICE_MODEL}.mar")
    return {field["name"]: field["max_length"] for field in manifest["fields"] if field.get("max_length")}


@pytest.fixture(scope="module", autouse=True)
def worker_pids_before(torchserve) -> dict[str, list[int]]:
    return {model: worker_pids(torchserve, model) for model in (CLASSIFIER, PRICE_MODEL)}


def assert_valid_price(response) -> None:
    assert response.status_code == 200, response.text
    for price in response.json()["prices"]:
        assert math.isfinite(price["value"]), price
        assert price["value"] >= 0, price


def field_names(response) -> list[str]:
    return [item["field"] for item in response.json()["fields"]]


AWKWARD_VALID_TEXT = {
    "empty-description": {"description": ""},
    "whitespace-description": {"description": " \t\n  "},
    "emoji": {"name": "Jeans 👖🔥", "description": "Super soft 😍" * 20, "colour": "🖤"},
    "accents": {"name": "Robe légère à fleurs", "description": "Größe Ü, coûte 20 €, señal", "colour": "Bleu foncé"},
    "cjk-and-rtl": {"name": "柔らかいTシャツ", "description": "قميص قطني ناعم", "product_type": "T恤"},
    "combining-and-zero-width": {"name": "Cafe\u0301 top", "description": "zero\u200bwidth\u200djoiner\ufeff"},
    "control-characters": {"description": "tab\tnew\nline\rreturn\x00nul\x1b[31m"},
    "number-like-strings": {"colour": "NaN", "product_type": "-1", "department": "Infinity", "index_name": "1e999"},
    "null-optional-fields": {"colour": None, "product_type": None, "department": None},
}


@pytest.mark.parametrize("case", sorted(AWKWARD_VALID_TEXT))
def test_awkward_text_gets_valid_price(case, product_fields, facade_client):
    payload = {**product_fields, **AWKWARD_VALID_TEXT[case]}

    response = facade_client.post("/v1/price", json=payload)

    assert_valid_price(response)


def test_text_at_handler_limit_gets_valid_price(product_fields, price_field_limits, facade_client):
    limit = min(price_field_limits["description"], MAX_TEXT_CHARS)
    payload = {**product_fields, "description": ("knit " * limit)[:limit]}

    response = facade_client.post("/v1/price", json=payload)

    assert_valid_price(response)


def test_price_list_with_awkward_items(product_fields, facade_client):
    items = [{**product_fields, **AWKWARD_VALID_TEXT[case]} for case in sorted(AWKWARD_VALID_TEXT)]

    response = facade_client.post("/v1/price", json=items)

    assert_valid_price(response)
    assert len(response.json()["prices"]) == len(items)


# --- Rejected text -------------------------------------------------------------------


WRONG_TYPES = [
    ("name", 123),
    ("name", None),
    ("name", ["Sweater"]),
    ("description", {"text": "soft"}),
    ("description", True),
    ("colour", -5),
    ("colour", 3.5),
    ("product_type", False),
]


@pytest.mark.parametrize(("field", "value"), WRONG_TYPES, ids=[f"{field}-{type(value).__name__}" for field, value in WRONG_TYPES])
def test_wrong_json_type_is_422(field, value, product_fields, facade_client):
    response = facade_client.post("/v1/price", json={**product_fields, field: value})

    assert response.status_code == 422, response.text
    assert field_names(response) == [field]
    assert_no_stack_trace(response)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "-5", "1e999"])
def test_non_finite_or_negative_number_is_422(literal, product_fields, facade_client):
    # Python's JSON parser accepts NaN and Infinity, which standard JSON does not.
    body = json.dumps(product_fields)[:-1] + f', "colour": {literal}}}'

    response = facade_client.post("/v1/price", content=body.encode(), headers={"Content-Type": "application/json"})

    assert response.status_code == 422, response.text
    assert field_names(response) == ["colour"]


def test_unknown_field_is_422(product_fields, facade_client):
    response = facade_client.post("/v1/price", json={**product_fields, "price": "19.99"})

    assert response.status_code == 422, response.text
    assert field_names(response) == ["price"]


def test_empty_name_is_422(product_fields, facade_client):
    response = facade_client.post("/v1/price", json={**product_fields, "name": ""})

    assert response.status_code == 422, response.text
    assert field_names(response) == ["name"]


def test_whitespace_name_is_4xx(product_fields, facade_client):
    response = facade_client.post("/v1/price", json={**product_fields, "name": "  \t "})

    assert 400 <= response.status_code < 500, response.text
    assert "'name'" in response.json()["message"]


def test_100kb_description_is_truncated(product_fields, price_field_limits, facade_client):
    response = facade_client.post("/v1/price", json={**product_fields, "description": "soft cotton " * (HUNDRED_KB // 12)})

    assert_valid_price(response)
    assert response.json()["truncated_fields"] == ["description"]
    assert price_field_limits["description"] >= PRICED_DESCRIPTION_CHARS


def test_description_over_facade_limit_is_422(product_fields, facade_client):
    response = facade_client.post("/v1/price", json={**product_fields, "description": "x" * (MAX_TEXT_CHARS + 1)})

    assert response.status_code == 422, response.text
    assert field_names(response) == ["description"]
    assert str(MAX_TEXT_CHARS) in response.json()["message"]


def test_text_over_handler_limit_is_4xx(product_fields, price_field_limits, facade_client):
    limit = price_field_limits["colour"]
    if limit >= MAX_TEXT_CHARS:
        pytest.skip(f"the facade's own limit ({MAX_TEXT_CHARS} characters) is below the handler's ({limit})")

    response = facade_client.post("/v1/price", json={**product_fields, "colour": "x" * (limit + 1)})

    assert 400 <= response.status_code < 500, response.text
    assert "colour" in response.json()["message"]
    assert str(limit) in response.json()["message"]


def test_bad_item_in_price_list_names_it(product_fields, facade_client):
    items = [product_fields, {**product_fields, "name": 7}, product_fields]

    response = facade_client.post("/v1/price", json=items)

    assert response.status_code == 422, response.text
    assert field_names(response) == ["[1].name"]


@pytest.mark.parametrize("body", [b"[]", b"null", b'"a sweater"', b"42", b"[1, 2]"], ids=["empty-list", "null", "string", "number", "numbers"])
def test_body_of_wrong_shape_is_422(body, facade_client):
    response = facade_client.post("/v1/price", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 422, response.text


def test_broken_json_is_400(facade_client):
    response = facade_client.post("/v1/price", content=b'{"name": "Sweater", ', headers={"Content-Type": "application/json"})

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "malformed_request"


def test_invalid_utf8_is_4xx(facade_client):
    response = facade_client.post(
        "/v1/price", content=b'{"name": "Sweater \xff\xfe", "description": ""}', headers={"Content-Type": "application/json"}
    )

    assert 400 <= response.status_code < 500, response.text


# Valid JSON that json.loads still rejects: json.loads raises
# RecursionError for deep nesting and ValueError for integers over 4,300 digits.
UNREADABLE_JSON = {
    "nested-100k-deep": b"[" * 100_000 + b"]" * 100_000,
    "integer-5001-digits": b'{"name": "Sweater", "description": "", "colour": ' + b"1" * 5001 + b"}",
}


@pytest.mark.parametrize("case", sorted(UNREADABLE_JSON))
@pytest.mark.parametrize("path", ["/v1/price", "/v1/classify", "/v1/predict"])
def test_unreadable_json_is_400(path, case, facade_client):
    response = facade_client.post(path, content=UNREADABLE_JSON[case], headers={"Content-Type": "application/json"})

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "malformed_request"
    assert "nested too deeply" in response.json()["message"]


@pytest.mark.parametrize("case", sorted(UNREADABLE_JSON))
def test_unreadable_json_on_torchserve_is_400(case, torchserve):
    url = f"{torchserve.inference_url}/predictions/{PRICE_MODEL}"
    headers = {**torchserve.inference_headers(), "Content-Type": "application/json"}

    response = httpx.post(url, content=UNREADABLE_JSON[case], headers=headers, timeout=60)

    assert response.status_code == 400, response.text
    assert "nested too deeply" in response.json()["message"]


def test_invalid_utf8_names_the_encoding(facade_client):
    response = facade_client.post("/v1/price", content=b'{"name": "Pull \xe9t\xe9"}', headers={"Content-Type": "application/json"})

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "malformed_request"
    assert "UTF-8" in response.json()["message"]


# --- /v1/predict with awkward text ---------------------------------------------------


@pytest.mark.parametrize("case", ["emoji", "accents", "cjk-and-rtl", "empty-description"])
def test_predict_form_with_awkward_text(case, photo_bytes, product_fields, facade_client):
    text = {key: value for key, value in {**product_fields, **AWKWARD_VALID_TEXT[case]}.items() if value is not None}

    response = facade_client.post("/v1/predict", files={"image": ("photo.jpg", photo_bytes, "image/jpeg")}, data=text)

    assert response.status_code == 200, response.text
    price = response.json()["price"]["value"]
    assert math.isfinite(price), price
    assert price >= 0, price


def test_predict_form_with_100kb_description_is_200(photo_bytes, product_fields, facade_client):
    text = {**product_fields, "description": "soft cotton " * (HUNDRED_KB // 12)}

    response = facade_client.post("/v1/predict", files={"image": ("photo.jpg", photo_bytes, "image/jpeg")}, data=text)

    assert response.status_code == 200, response.text
    assert response.json()["truncated_fields"] == ["description"]
    assert response.json()["price"]["value"] >= 0


def test_predict_json_with_wrong_types_is_422(photo_bytes, product_fields, facade_client):
    import base64

    payload = {**product_fields, "image_base64": base64.b64encode(photo_bytes).decode(), "brand": 12}

    response = facade_client.post("/v1/predict", json=payload)

    assert response.status_code == 422, response.text
    assert field_names(response) == ["brand"]


def test_workers_survive_bad_text(worker_pids_before, torchserve, product_fields, facade_client):
    # The autouse fixture read the pids before the first test of this module.
    for model, pids in worker_pids_before.items():
        assert worker_pids(torchserve, model) == pids, f"a worker of {model} was restarted"

    assert_valid_price(facade_client.post("/v1/price", json=product_fields))
