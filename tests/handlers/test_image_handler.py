"""ImageClassifierHandler through TorchServe's Context: request forms, batches, per-item errors and setup checks."""

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image
from ts.metrics.metric_type_enum import MetricTypes

from image_handler import ImageClassifierHandler
from model_manifest import ManifestError
from model_store.archive import model_config
from onnx_session import DeviceUnavailableError
from tests.handlers import awkward_images as awkward
from tests.handlers.batch_runner import initialize_handler, run_batch
from training.transforms import eval_transform


@pytest.fixture(scope="module")
def photos(sample_root) -> list[Path]:
    return sorted((sample_root / "hm" / "images").rglob("*.jpg"))[::25]


@pytest.fixture(scope="module")
def manifest(demo_models) -> dict:
    return json.loads((demo_models.classifier_dir / "manifest.json").read_text())


def reference_probabilities(demo_models, manifest, paths: list[Path]) -> np.ndarray:
    """Probabilities from ONNX Runtime on training's eval_transform tensors."""
    image_size = manifest["preprocessing"]["resize"][0]
    tensors = []
    for path in paths:
        with Image.open(path) as image:
            tensors.append(eval_transform(image_size)(image.convert("RGB")).numpy())
    session = ort.InferenceSession(str(demo_models.classifier_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"image": np.stack(tensors)})[0]


def test_batch_matches_reference_model(classifier, demo_models, manifest, photos):
    handler, context = classifier
    results = run_batch(handler, context, [{"body": path.read_bytes()} for path in photos])
    expected = reference_probabilities(demo_models, manifest, photos)

    for result, row in zip(results, expected):
        assert result.status == 200
        assert result.content_type == "application/json"
        assert result.body["label"] == manifest["labels"][int(row.argmax())]
        assert result.body["probability"] == pytest.approx(float(row.max()), abs=1e-5)


def test_response_lists_top_k_sorted(classifier, manifest, photos):
    handler, context = classifier
    body = run_batch(handler, context, [{"body": photos[0].read_bytes()}])[0].body

    probabilities = [entry["probability"] for entry in body["top_k"]]
    assert len(body["top_k"]) == 3
    assert probabilities == sorted(probabilities, reverse=True)
    assert body["top_k"][0]["label"] == body["label"]
    assert all(entry["label"] in manifest["labels"] for entry in body["top_k"])
    assert 0.0 < sum(probabilities) <= 1.0 + 1e-6
    assert body["model_name"] == "fashion_classifier"
    assert body["model_version"] == manifest["model_version"]


def test_request_forms_give_same_answer(classifier, photos):
    handler, context = classifier
    data = photos[1].read_bytes()
    encoded = base64.b64encode(data).decode()
    requests = [
        {"body": data},
        {"image": data},
        {"file": bytearray(data)},
        {"body": {"image": encoded}},
        {"body": {"b64": encoded}},
        {"body": json.dumps({"data": f"data:image/jpeg;base64,{encoded}"}).encode()},
        {"body": encoded},
        {"body": base64.urlsafe_b64encode(data).decode().rstrip("=")},
    ]
    results = run_batch(handler, context, requests)

    assert [result.status for result in results] == [200] * len(requests)
    assert len({json.dumps(result.body["top_k"]) for result in results}) == 1


def test_mixed_batch_rejects_only_bad_items(classifier, photos):
    handler, context = classifier
    good = photos[2].read_bytes()
    requests = [
        {"body": good},
        {"body": awkward.random_bytes()},
        {"body": good},
        {"body": awkward.png_header_claiming(100_000, 100_000)},
        {"body": awkward.truncated(good)},
        {"body": {"image": "not base64 !!"}},
        {"body": [1, 2]},
        {"body": good},
    ]
    results = run_batch(handler, context, requests)

    assert [result.status for result in results] == [200, 415, 200, 413, 400, 400, 400, 200]
    assert results[0].body == results[2].body == results[7].body
    for result in results:
        if result.status != 200:
            assert result.content_type == "application/json"
            assert result.body["code"] == result.status
            assert result.body["message"]


def test_awkward_images_classified(classifier):
    handler, context = classifier
    images = [
        awkward.rgba_png(),
        awkward.palette_png_with_transparency(),
        awkward.grayscale_alpha_png(),
        awkward.grayscale_jpeg(),
        awkward.cmyk_jpeg(),
        awkward.exif_rotated_jpeg(),
        awkward.sixteen_bit_png(),
        awkward.animated("GIF"),
        awkward.animated("WEBP"),
    ]
    results = run_batch(handler, context, [{"body": data} for data in images])
    assert [result.status for result in results] == [200] * len(images)


def test_error_messages_name_the_problem(classifier):
    handler, context = classifier
    results = run_batch(
        handler,
        context,
        [{"body": {"picture": "abc"}}, {"body": b"{not json"}, {"a": b"1", "b": b"2"}, {"body": ""}],
    )
    assert "'picture'" in results[0].body["message"]
    assert "not valid JSON" in results[1].body["message"]
    assert "form fields ['a', 'b']" in results[2].body["message"]
    assert "empty" in results[3].body["message"]
    assert [result.status for result in results] == [400, 400, 400, 400]


def test_batch_metrics_recorded(classifier, photos):
    handler, context = classifier
    run_batch(handler, context, [{"body": photos[0].read_bytes()}] * 3)
    metrics = context.metrics
    # get_metric raises MetricsCacheKeyError for a metric that was never recorded.
    for name in ("HandlerPreprocessTime", "HandlerInferenceTime"):
        assert metrics.get_metric(name, metric_type=MetricTypes.GAUGE).metric_name == name
    assert metrics.get_metric("HandlerBatchSize", metric_type=MetricTypes.HISTOGRAM).metric_name == "HandlerBatchSize"


def copy_model(demo_models, tmp_path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(demo_models.classifier_dir, target)
    return target


def test_cuda_device_never_falls_back_to_cpu(demo_models):
    config = model_config("classifier", overrides={"handler": {"device": "cuda"}})
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(DeviceUnavailableError, match="device: cpu"):
            initialize_handler(ImageClassifierHandler, "fashion_classifier", demo_models.classifier_dir, config)
    else:
        handler, _ = initialize_handler(ImageClassifierHandler, "fashion_classifier", demo_models.classifier_dir, config)
        assert handler.session.get_providers()[0] == "CUDAExecutionProvider"


def test_cpu_threads_from_config(demo_models):
    config = model_config("classifier", overrides={"handler": {"intra_op_threads": 1}})
    handler, _ = initialize_handler(ImageClassifierHandler, "fashion_classifier", demo_models.classifier_dir, config)
    assert handler.session.get_providers() == ["CPUExecutionProvider"]
    assert handler.session.get_session_options().intra_op_num_threads == 1


def test_modified_onnx_file_rejected(demo_models, tmp_path):
    model_dir = copy_model(demo_models, tmp_path)
    with open(model_dir / "model.onnx", "ab") as onnx_file:
        onnx_file.write(b"\0")
    with pytest.raises(ManifestError, match="SHA-256"):
        initialize_handler(ImageClassifierHandler, "fashion_classifier", model_dir, model_config("classifier"))


def test_price_manifest_rejected(demo_models):
    with pytest.raises(ManifestError, match="price-regression"):
        initialize_handler(ImageClassifierHandler, "fashion_classifier", demo_models.price_dir, model_config("classifier"))


def test_invalid_top_k_rejected(demo_models):
    config = model_config("classifier", overrides={"handler": {"top_k": 0}})
    with pytest.raises(ValueError, match="handler.top_k"):
        initialize_handler(ImageClassifierHandler, "fashion_classifier", demo_models.classifier_dir, config)
