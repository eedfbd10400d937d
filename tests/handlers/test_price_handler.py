"""PriceHandler through TorchServe's Context: request shapes, validation errors and prediction values."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from price_handler import MAX_PRICE
from tests.handlers.batch_runner import run_batch
from training.price.adapters import load_hm

HANDLERS_DIR = Path(__file__).resolve().parents[2] / "handlers"


@pytest.fixture(scope="module")
def manifest(demo_models) -> dict:
    return json.loads((demo_models.price_dir / "manifest.json").read_text())


@pytest.fixture(scope="module")
def products(sample_root) -> list[dict]:
    """Real H&M articles of the sample as price requests with every field of the H&M schema."""
    return load_hm(sample_root).features.head(12).to_dict("records")


def reference_prices(demo_models, manifest, rows: list[dict]) -> np.ndarray:
    session = ort.InferenceSession(str(demo_models.price_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {field["name"]: np.array([[row.get(field["name"], "")] for row in rows], dtype=object) for field in manifest["fields"]}
    return np.expm1(session.run(None, feeds)[0].reshape(-1).astype(np.float64))


def test_single_object_gets_single_answer(price_model, products, manifest, demo_models):
    handler, context = price_model
    result = run_batch(handler, context, [{"body": products[0]}])[0]

    assert result.status == 200
    assert result.body["price"] == pytest.approx(reference_prices(demo_models, manifest, products[:1])[0], rel=1e-6)
    assert result.body["unit"] == manifest["target"]["unit"]
    assert result.body["currency"] == manifest["target"]["currency"]
    assert result.body["model_version"] == manifest["model_version"]


def test_list_answered_in_order(price_model, products, manifest, demo_models):
    handler, context = price_model
    result = run_batch(handler, context, [{"body": json.dumps(products).encode()}])[0]

    assert result.status == 200
    assert isinstance(result.body, list)
    expected = reference_prices(demo_models, manifest, products)
    assert [answer["price"] for answer in result.body] == pytest.approx(list(expected), rel=1e-6)


def test_requests_of_a_batch_split_correctly(price_model, products):
    handler, context = price_model
    requests = [{"body": products[:3]}, {"body": products[3]}, {"body": products[4:9]}]
    results = run_batch(handler, context, requests)
    alone = [run_batch(handler, context, [request])[0].body for request in requests]

    assert [result.status for result in results] == [200, 200, 200]
    assert [len(results[0].body), len(results[2].body)] == [3, 5]
    batched_prices = [answer["price"] for answer in results[0].body + [results[1].body] + results[2].body]
    alone_prices = [answer["price"] for answer in alone[0] + [alone[1]] + alone[2]]
    # Batch size changes ONNX Runtime's float32 summation order, hence the tolerance.
    assert batched_prices == pytest.approx(alone_prices, rel=1e-5)


def test_absent_optional_fields_filled(price_model, products, manifest, demo_models):
    handler, context = price_model
    name_only = {"name": products[0]["name"]}
    result = run_batch(handler, context, [{"body": name_only}])[0]

    assert result.status == 200
    expected = reference_prices(demo_models, manifest, [name_only])[0]
    assert result.body["price"] == pytest.approx(expected, rel=1e-6)
    null_fields = {**name_only, "description": None}
    assert run_batch(handler, context, [{"body": null_fields}])[0].body == result.body


def test_predictions_finite_and_non_negative(price_model, products):
    handler, context = price_model
    unusual = [
        {"name": "Ünïcödé jäcket 🧥", "description": "é" * 300},
        {"name": "x"},
        {"name": "   a   ", "colour": "Black"},
    ]
    body = run_batch(handler, context, [{"body": products + unusual}])[0].body
    for answer in body:
        assert math.isfinite(answer["price"])
        assert answer["price"] >= 0


@pytest.mark.parametrize(
    "payload,message",
    [
        ({"name": "Jeans", "brand": "Acme"}, "unknown fields ['brand']"),
        ({"name": 12}, "field 'name' must be a string"),
        ({"name": "Jeans", "colour": ["Blue"]}, "field 'colour' must be a string"),
        ({"description": "no name"}, "required field 'name'"),
        ({"name": "   "}, "required field 'name'"),
        ([], "empty list"),
        ([{"name": "a"}] * 65, "65 products, above the limit of 64"),
        ([{"name": "a"}, "b"], "Item 1 is a JSON str"),
        ([{"name": "a"}, {"name": "b", "size": "M"}], "Item 1 has unknown fields ['size']"),
        (b'"just text"', "JSON str"),
        ("just text", "not valid JSON"),
        (42, "JSON int"),
    ],
)
def test_invalid_request_rejected_with_400(price_model, payload, message):
    handler, context = price_model
    result = run_batch(handler, context, [{"body": payload}])[0]
    assert result.status == 400
    assert message in result.body["message"]


def test_too_long_field_rejected(price_model, manifest):
    handler, context = price_model
    max_length = next(field["max_length"] for field in manifest["fields"] if field["name"] == "description")
    at_limit = run_batch(handler, context, [{"body": {"name": "Jeans", "description": "x" * max_length}}])[0]
    over_limit = run_batch(handler, context, [{"body": {"name": "Jeans", "description": "x" * (max_length + 1)}}])[0]

    assert at_limit.status == 200
    assert over_limit.status == 400
    assert f"{max_length + 1} characters, above the maximum of {max_length}" in over_limit.body["message"]


def test_invalid_json_bytes_rejected(price_model):
    handler, context = price_model
    results = run_batch(handler, context, [{"body": b'{"name": '}, {"body": b"\xff\xfe"}])
    assert [result.status for result in results] == [400, 400]
    assert "not valid JSON" in results[0].body["message"]
    assert "UTF-8" in results[1].body["message"]


def test_mixed_batch_rejects_only_bad_items(price_model, products):
    handler, context = price_model
    requests = [{"body": products[0]}, {"body": {"name": 1}}, {"body": products[1]}, {"body": {"bad": "x"}}]
    results = run_batch(handler, context, requests)
    assert [result.status for result in results] == [200, 400, 200, 400]
    assert "price" in results[0].body
    assert "price" in results[2].body


def test_out_of_range_outputs_clipped(price_model):
    handler, _ = price_model
    outputs = np.array([np.nan, np.inf, -np.inf, -5.0, 0.0, 1.0], dtype=np.float32)
    prices = handler._to_prices(outputs)
    assert list(prices[:5]) == [0.0, MAX_PRICE, 0.0, 0.0, 0.0]
    assert prices[5] == pytest.approx(math.expm1(1.0))


@pytest.mark.parametrize("module", ["price_handler", "image_handler"])
def test_handler_imports_neither_torch_nor_training(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'training', 'sklearn')))"
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=HANDLERS_DIR, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert output.strip() == "[]"
