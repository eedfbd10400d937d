"""Integration tests against a real TorchServe serving the demo archives on loopback ports."""

import base64
import ipaddress
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import psutil
import pytest
import yaml
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from tests.handlers import awkward_images as awkward
from training.transforms import eval_transform

CONFIG_DIR = Path(__file__).resolve().parents[2] / "model_store" / "config"
CONCURRENT_REQUESTS = 32
CLIENT_THREADS = 16


@pytest.fixture(scope="module")
def client(torchserve):
    with httpx.Client(base_url=torchserve.inference_url, headers=torchserve.inference_headers(), timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def manifest(demo_models) -> dict:
    return json.loads((demo_models.classifier_dir / "manifest.json").read_text())


@pytest.fixture(scope="module")
def photos(sample_root) -> list[Path]:
    return sorted((sample_root / "hm" / "images").rglob("*.jpg"))[::30]


def reference_probabilities(demo_models, manifest, path: Path) -> np.ndarray:
    image_size = manifest["preprocessing"]["resize"][0]
    with Image.open(path) as image:
        tensor = eval_transform(image_size)(image.convert("RGB")).numpy()
    session = ort.InferenceSession(str(demo_models.classifier_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"image": tensor[None]})[0][0]


def batch_size_histogram(torchserve, model: str) -> tuple[float, float]:
    """Return (batches of size 1, all batches) that the handler recorded for `model`."""
    text = httpx.get(f"{torchserve.metrics_url}/metrics", timeout=10).text
    single, total = 0.0, 0.0
    for family in text_string_to_metric_families(text):
        if family.name != "HandlerBatchSize":
            continue
        for sample in family.samples:
            if sample.labels.get("ModelName") != model:
                continue
            if sample.name == "HandlerBatchSize_bucket" and sample.labels["le"] == "1.0":
                single = sample.value
            elif sample.name == "HandlerBatchSize_count":
                total = sample.value
    return single, total


def post_concurrently(client, bodies: list[bytes], path: str = "/predictions/fashion_classifier") -> list[httpx.Response]:
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        return list(pool.map(lambda body: client.post(path, content=body), bodies))


def test_models_ready_with_archive_settings(torchserve):
    for model in ("fashion_classifier", "price_regressor"):
        expected = yaml.safe_load((CONFIG_DIR / f"{model}.yaml").read_text())["cpu"]
        description = torchserve.describe(model)[0]
        assert [worker["status"] for worker in description["workers"]] == ["READY"]
        assert description["batchSize"] == expected["batchSize"]
        assert description["maxBatchDelay"] == expected["maxBatchDelay"]


def test_stored_photo_matches_training_path(client, demo_models, manifest, photos):
    for path in photos:
        response = client.post("/predictions/fashion_classifier", content=path.read_bytes())
        assert response.status_code == 200, response.text
        body = response.json()

        expected = reference_probabilities(demo_models, manifest, path)
        assert body["label"] == manifest["labels"][int(expected.argmax())]
        assert body["probability"] == pytest.approx(float(expected.max()), abs=1e-5)


def test_fullsize_photo_matches_training_top1(client, demo_models, manifest, sample_root):
    for path in sorted((sample_root / "hm" / "fullsize").glob("*.jpg")):
        response = client.post("/predictions/fashion_classifier", content=path.read_bytes())
        assert response.status_code == 200, response.text
        expected = reference_probabilities(demo_models, manifest, path)
        assert response.json()["label"] == manifest["labels"][int(expected.argmax())], path.name


def test_multipart_and_base64_match_raw_upload(client, photos):
    data = photos[0].read_bytes()
    raw = client.post("/predictions/fashion_classifier", content=data).json()
    multipart = client.post("/predictions/fashion_classifier", files={"image": ("photo.jpg", data, "image/jpeg")})
    as_json = client.post("/predictions/fashion_classifier", json={"image": base64.b64encode(data).decode()})

    assert multipart.status_code == 200, multipart.text
    assert as_json.status_code == 200, as_json.text
    assert multipart.json() == raw
    assert as_json.json() == raw


def test_concurrent_requests_form_batches(torchserve, client, photos):
    single_before, total_before = batch_size_histogram(torchserve, "fashion_classifier")
    bodies = [photos[i % len(photos)].read_bytes() for i in range(CONCURRENT_REQUESTS)]

    responses = post_concurrently(client, bodies)

    assert [response.status_code for response in responses] == [200] * CONCURRENT_REQUESTS
    single_after, total_after = batch_size_histogram(torchserve, "fashion_classifier")
    batches = total_after - total_before
    assert 0 < batches < CONCURRENT_REQUESTS, f"{CONCURRENT_REQUESTS} requests ran in {batches} batches"
    assert single_after - single_before < batches, "no batch held more than one request"


def test_mixed_batch_answers_each_request(torchserve, client, photos):
    good = photos[0].read_bytes()
    expected_label = client.post("/predictions/fashion_classifier", content=good).json()["label"]
    bad = awkward.random_bytes()
    bodies = [good if i % 2 == 0 else bad for i in range(CONCURRENT_REQUESTS)]
    single_before, total_before = batch_size_histogram(torchserve, "fashion_classifier")

    responses = post_concurrently(client, bodies)

    for body, response in zip(bodies, responses):
        if body is good:
            assert response.status_code == 200, response.text
            assert response.json()["label"] == expected_label
        else:
            assert response.status_code == 415, response.text
            assert "not an image in a supported format" in response.json()["message"]
    single_after, total_after = batch_size_histogram(torchserve, "fashion_classifier")
    assert single_after - single_before < total_after - total_before, "no batch mixed several requests"


def test_awkward_uploads_get_their_status(client, photos):
    cases = [
        (awkward.rgba_png(), 200),
        (awkward.cmyk_jpeg(), 200),
        (awkward.animated("GIF"), 200),
        (awkward.truncated(photos[0].read_bytes()), 400),
        (awkward.png_header_claiming(100_000, 100_000), 413),
        (awkward.random_bytes(), 415),
    ]
    for data, status in cases:
        response = client.post("/predictions/fashion_classifier", content=data)
        assert response.status_code == status, response.text
        if status != 200:
            assert response.json()["code"] == status


def test_price_object_and_list(client):
    item = {"name": "Slim jeans", "description": "Five-pocket jeans in washed denim", "colour": "Blue"}
    single = client.post("/predictions/price_regressor", json=item)
    several = client.post("/predictions/price_regressor", json=[item, {"name": "Wool scarf"}])

    assert single.status_code == 200, single.text
    assert several.status_code == 200, several.text
    assert single.json()["price"] >= 0
    assert isinstance(several.json(), list)
    assert several.json()[0] == single.json()
    assert len(several.json()) == 2


def test_price_unknown_field_rejected(client):
    response = client.post("/predictions/price_regressor", json={"name": "Jeans", "brand": "Acme"})
    assert response.status_code == 400
    assert "unknown fields ['brand']" in response.json()["message"]


def test_request_without_key_rejected(torchserve, photos):
    data = photos[0].read_bytes()
    url = f"{torchserve.inference_url}/predictions/fashion_classifier"
    attempts = {
        "no key": {},
        "wrong key": {"Authorization": "Bearer wrong-key"},
        "management key": {"Authorization": f"Bearer {torchserve.management_key}"},
    }
    for name, headers in attempts.items():
        response = httpx.post(url, content=data, headers=headers, timeout=30)
        # TorchServe 0.12 responds to a failed token check with 400 InvalidKeyException.
        assert response.status_code == 400, name
        assert "Token Authorization failed" in response.text, name

    management = httpx.get(f"{torchserve.management_url}/models", timeout=10)
    assert management.status_code == 400
    assert "Token Authorization failed" in management.text


def test_model_registration_disabled(torchserve):
    response = httpx.post(
        f"{torchserve.management_url}/models",
        params={"url": "fashion_classifier.mar", "model_name": "second_copy"},
        headers=torchserve.management_headers(),
        timeout=10,
    )
    assert response.status_code == 405


def test_oversized_request_rejected(client):
    response = client.post("/predictions/fashion_classifier", content=b"\xff" * (10 * 1024 * 1024 + 1))
    assert response.status_code == 413


def test_listeners_bound_to_loopback(torchserve):
    java = [process for process in torchserve.launcher.children() if "java" in process.name()]
    assert len(java) == 1
    listening = [conn for conn in java[0].net_connections(kind="inet") if conn.status == psutil.CONN_LISTEN]
    ports = {conn.laddr.port for conn in listening}
    config = torchserve.config
    expected_ports = {
        config.inference_port,
        config.management_port,
        config.metrics_port,
        config.grpc_inference_port,
        config.grpc_management_port,
    }
    assert expected_ports <= ports
    # Java reports IPv4 listeners as IPv4-mapped IPv6 addresses (::ffff:127.0.0.1).
    addresses = {ipaddress.ip_address(conn.laddr.ip) for conn in listening}
    ipv4 = {address.ipv4_mapped or address for address in addresses}
    assert ipv4 == {ipaddress.ip_address("127.0.0.1")}


def test_workers_answer_without_loading_torch(torchserve, client, photos):
    # model_store/worker_site/sitecustomize.py defers TorchServe's `import torch`, and the
    # ONNX Runtime handlers must respond without anything loading torch after all.
    assert client.post("/predictions/fashion_classifier", content=photos[0].read_bytes()).status_code == 200
    assert client.post("/predictions/price_regressor", json={"name": "Rebecca shirt"}).status_code == 200

    workers = [process for process in torchserve.launcher.children(recursive=True) if is_worker(process)]
    assert len(workers) == 2
    for worker in workers:
        libraries = {Path(region.path).name for region in worker.memory_maps()}
        assert not any(name.startswith("libtorch") for name in libraries), f"worker {worker.pid} loaded torch"


def is_worker(process: psutil.Process) -> bool:
    return any(part.endswith("model_service_worker.py") for part in process.cmdline())
