"""Error paths of the facade: client mistakes get 4xx naming the field, TorchServe down gets a fast 503."""

import http.client
import os
from urllib.parse import urlsplit

import httpx
import pytest

from frontend_api.settings import DEFAULT_MAX_UPLOAD_BYTES


def error_fields(response: httpx.Response) -> list[str]:
    return [item["field"] for item in response.json()["fields"]]


def post_photo_form(client: httpx.Client, path: str, files: dict, data: dict | None = None) -> httpx.Response:
    return client.post(path, files=files, data=data or {})


@pytest.fixture(scope="module")
def product(sample_products):
    return sample_products["Garment Upper body"]


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/classify"])
def test_missing_image_is_422(path, product, facade_client):
    # A multipart form with text fields only; (None, value) makes a text part without a filename.
    files = {name: (None, value) for name, value in product.text_without_group().items()}
    response = facade_client.post(path, files=files)

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_input"
    assert error_fields(response) == ["image"]


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/classify"])
def test_empty_image_is_422(path, product, facade_client):
    response = post_photo_form(facade_client, path, {"image": ("empty.jpg", b"", "image/jpeg")}, product.text_without_group())

    assert response.status_code == 422, response.text
    assert error_fields(response) == ["image"]
    assert "empty" in response.json()["message"]


def test_classify_rejects_text_fields(product, facade_client):
    files = {"image": ("p.jpg", product.photo.read_bytes(), "image/jpeg"), "name": (None, "Sweater")}
    response = facade_client.post("/v1/classify", files=files)

    assert response.status_code == 422, response.text
    assert error_fields(response) == ["name"]


def test_image_sent_as_text_field_is_422(product, facade_client):
    files = {"image": (None, "not a file")}
    response = facade_client.post("/v1/classify", files=files)

    assert response.status_code == 422, response.text
    assert error_fields(response) == ["image"]


@pytest.mark.parametrize(
    "content",
    [os.urandom(4096), b"name,price\nsweater,10\n", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64],
    ids=["random-bytes", "csv-text", "truncated-png"],
)
def test_not_an_image_is_rejected_with_4xx(content, product, facade_client):
    response = post_photo_form(
        facade_client, "/v1/predict", {"image": ("photo.jpg", content, "image/jpeg")}, product.text_without_group()
    )

    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"] == "rejected_by_model"
    assert response.json()["message"]


def test_declared_oversized_upload_is_413_before_body(facade):
    # Send only the headers: the 413 must arrive without the facade reading any body.
    address = urlsplit(facade.base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.putrequest("POST", "/v1/classify")
        connection.putheader("Content-Type", "multipart/form-data; boundary=x")
        connection.putheader("Content-Length", str(DEFAULT_MAX_UPLOAD_BYTES + 1))
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()

    assert response.status == 413
    assert b"FPS_MAX_UPLOAD_BYTES" in body


def test_streamed_oversized_upload_is_413(facade_client):
    chunk = b"0" * (1 << 20)
    chunks_needed = DEFAULT_MAX_UPLOAD_BYTES // len(chunk) + 2

    def body():
        # A generator body is sent with chunked transfer encoding, without Content-Length.
        yield b'--x\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\n\r\n'
        for _ in range(chunks_needed):
            yield chunk
        yield b"\r\n--x--\r\n"

    response = facade_client.post(
        "/v1/classify", content=body(), headers={"Content-Type": "multipart/form-data; boundary=x"}
    )

    assert response.status_code == 413, response.text
    assert response.json()["error"] == "payload_too_large"


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", 123), ("description", ["a", "b"]), ("colour", {"name": "Black"}), ("product_group", 7)],
)
def test_wrong_json_type_is_422_naming_field(field, value, product, facade_client):
    payload = {**product.fields, field: value}
    response = facade_client.post("/v1/price", json=payload)

    assert response.status_code == 422, response.text
    assert error_fields(response) == [field]


def test_wrong_type_in_price_list_names_item(product, facade_client):
    response = facade_client.post("/v1/price", json=[product.fields, {**product.fields, "name": 5}, "text"])

    assert response.status_code == 422, response.text
    assert error_fields(response) == ["[1].name", "[2]"]


def test_wrong_json_type_in_predict_is_422(product, facade_client):
    payload = {**product.text_without_group(), "name": 3.5, "image_base64": "aGVsbG8="}
    response = facade_client.post("/v1/predict", json=payload)

    assert response.status_code == 422, response.text
    assert error_fields(response) == ["name"]


def test_text_field_sent_as_file_is_422(product, facade_client):
    files = {"image": ("photo.jpg", product.photo.read_bytes(), "image/jpeg"), "name": ("name.txt", b"Sweater")}
    response = facade_client.post("/v1/predict", files=files, data={"description": ""})

    assert response.status_code == 422, response.text
    assert error_fields(response) == ["name"]


def test_missing_required_field_is_422(product, facade_client):
    fields = product.text_without_group()
    del fields["description"]
    response = post_photo_form(facade_client, "/v1/predict", {"image": ("p.jpg", product.photo.read_bytes())}, fields)

    assert response.status_code == 422, response.text
    assert error_fields(response) == ["description"]


def test_unknown_field_is_422(product, facade_client):
    response = facade_client.post("/v1/price", json={**product.fields, "colour_name": "Black"})

    assert response.status_code == 422, response.text
    assert error_fields(response) == ["colour_name"]


def test_repeated_form_field_is_422(product, facade_client):
    files = [
        ("image", ("p.jpg", product.photo.read_bytes(), "image/jpeg")),
        ("name", (None, "first")),
        ("name", (None, "second")),
        ("description", (None, "")),
    ]
    response = facade_client.post("/v1/predict", files=files)

    assert response.status_code == 422, response.text
    assert error_fields(response) == ["name"]


def test_invalid_base64_is_422(facade_client):
    response = facade_client.post("/v1/classify", json={"image_base64": "not base64 at all!"})

    assert response.status_code == 422, response.text
    assert error_fields(response) == ["image_base64"]


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/classify", "/v1/price"])
def test_malformed_json_is_400(path, facade_client):
    response = facade_client.post(path, content=b'{"name": "Sweater",', headers={"Content-Type": "application/json"})

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "malformed_request"


def test_unsupported_content_type_is_415(product, facade_client):
    response = facade_client.post(
        "/v1/classify", content=product.photo.read_bytes(), headers={"Content-Type": "image/jpeg"}
    )

    assert response.status_code == 415, response.text
    assert "multipart/form-data" in response.json()["message"]


def test_too_many_price_items_is_422(product, facade_client):
    response = facade_client.post("/v1/price", json=[product.fields] * 65)

    assert response.status_code == 422, response.text
    assert "FPS_MAX_PRICE_ITEMS" in response.json()["message"]


def test_empty_price_list_is_422(facade_client):
    response = facade_client.post("/v1/price", json=[])

    assert response.status_code == 422, response.text


def test_bad_input_never_gives_5xx(product, facade_client):
    cases = [
        ("/v1/predict", {"content": b"", "headers": {"Content-Type": "multipart/form-data; boundary=x"}}),
        ("/v1/predict", {"content": b"--x\r\nbroken", "headers": {"Content-Type": "multipart/form-data; boundary=x"}}),
        ("/v1/predict", {"content": b"\xff\xfe\x00", "headers": {"Content-Type": "application/json"}}),
        ("/v1/predict", {"json": None}),
        ("/v1/predict", {"json": [1, 2, 3]}),
        ("/v1/predict", {"json": {"image_base64": "", "name": "", "description": ""}}),
        ("/v1/classify", {"json": {"image_base64": 5}}),
        ("/v1/classify", {"json": {"image": "aGVsbG8="}}),
        ("/v1/price", {"json": {"name": "", "description": ""}}),
        ("/v1/price", {"json": {"name": "x" * 100_000, "description": ""}}),
        ("/v1/price", {"json": "a string"}),
        ("/v1/price", {"content": b"", "headers": {"Content-Type": "application/json"}}),
        ("/v1/price", {"content": b"name=x", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
    ]
    for path, request in cases:
        response = facade_client.post(path, **request)
        assert 400 <= response.status_code < 500, f"{path} {request}: {response.status_code} {response.text}"
        assert response.json()["request_id"] == response.headers["X-Request-ID"]


# --- TorchServe stopped: a facade pointed at a closed port -------------------------------


@pytest.fixture(scope="module")
def down_client(facade_without_torchserve):
    # The timeout only turns a hang into a failure; connection refused must come back at once.
    with httpx.Client(base_url=facade_without_torchserve.base_url, timeout=10) as client:
        yield client


def test_classify_with_torchserve_down_is_503(product, down_client):
    response = down_client.post("/v1/classify", files={"image": ("p.jpg", product.photo.read_bytes(), "image/jpeg")})

    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "2"
    assert response.json()["error"] == "model_unavailable"


def test_predict_with_torchserve_down_is_503(product, down_client):
    for fields in (product.text_without_group(), product.fields):
        response = down_client.post(
            "/v1/predict", files={"image": ("p.jpg", product.photo.read_bytes(), "image/jpeg")}, data=fields
        )
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "2"


def test_price_with_torchserve_down_is_503(product, down_client):
    response = down_client.post("/v1/price", json=product.fields)

    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "2"


def test_readyz_with_torchserve_down_is_503(down_client):
    response = down_client.get("/readyz")

    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "not_ready"
    assert all(not model["ready"] for model in body["models"].values())


def test_healthz_with_torchserve_down_is_200(down_client):
    assert down_client.get("/healthz").status_code == 200


def test_failed_upstream_calls_are_counted(product, down_client):
    down_client.post("/v1/price", json=product.fields)
    metrics = down_client.get("/metrics").text

    assert 'fps_upstream_requests_total{call="price",model="price_regressor",outcome="unavailable"}' in metrics
    assert 'fps_http_requests_total{endpoint="/v1/price",method="POST",status="503"}' in metrics


@pytest.mark.parametrize(
    "headers",
    [{"Content-Type": "application/x-www-form-urlencoded"}, {"Content-Type": "text/plain"}],
    ids=["form-encoded", "text-plain"],
)
def test_price_with_non_json_content_type_is_415(headers, facade_client):
    response = facade_client.post("/v1/price", content=b'{"name": "a", "description": "x"}', headers=headers)

    assert response.status_code == 415, response.text
    assert response.json()["error"] == "unsupported_media_type"
    assert "application/json" in response.json()["message"]


@pytest.mark.parametrize("group", ["Spaceships", "Garment upper body"], ids=["unknown", "wrong-case"])
def test_unknown_product_group_is_422(group, facade_client):
    response = facade_client.post("/v1/price", json={"name": "Sweater", "description": "", "product_group": group})

    assert response.status_code == 422, response.text
    assert response.json()["fields"][0]["field"] == "product_group"
    assert "Garment Upper body" in response.json()["message"]
