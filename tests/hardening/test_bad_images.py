"""Awkward, broken and hostile images through the facade against the session's TorchServe.

Awkward but valid files must classify exactly like the upright RGB image they
contain. Broken files get a 4xx that names the problem, and the classifier's worker
keeps running: its pid is the same before and after, and a good photo still succeeds.
"""

import asyncio
import io
import os
import re
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.hardening import photo_variants
from tests.hardening.conftest import CLASSIFIER, assert_no_stack_trace, classify_photo, worker_pids

# ONNX Runtime computes the same pixels to the same probabilities up to float32
# rounding, which can differ slightly with the batch a request lands in.
SAME_IMAGE_TOLERANCE = 1e-4
# A decoy must move some probability by ten times the tolerance, or the test cannot
# tell a right decoding from the wrong one.
DECOY_MIN_DIFFERENCE = 10 * SAME_IMAGE_TOLERANCE

BATCH_SIZE = 8
MAX_BATCH_ATTEMPTS = 5


def top_k(response: httpx.Response) -> list[tuple[str, float]]:
    assert response.status_code == 200, response.text
    return [(item["label"], item["probability"]) for item in response.json()["category"]["top_k"]]


def max_difference(first: list[tuple[str, float]], second: list[tuple[str, float]]) -> float:
    """Largest probability difference of two top-k lists; infinite when their label order differs."""
    if [label for label, _ in first] != [label for label, _ in second]:
        return float("inf")
    return max(abs(a - b) for (_, a), (_, b) in zip(first, second))


@pytest.fixture(scope="module")
def photo(photo_bytes) -> Image.Image:
    return Image.open(io.BytesIO(photo_bytes))


@pytest.fixture()
def classifier_pids(torchserve) -> list[int]:
    """The classifier's worker pids before the test; the test checks they are unchanged afterwards."""
    pids = worker_pids(torchserve, CLASSIFIER)
    assert pids, "the classifier has no READY worker before the test"
    return pids


def assert_worker_survived(torchserve, facade_client, photo_bytes, pids_before: list[int]) -> None:
    """The same worker processes are READY and a good photo classifies."""
    assert worker_pids(torchserve, CLASSIFIER) == pids_before, "the classifier's worker was restarted"
    response = classify_photo(facade_client, photo_bytes)
    assert response.status_code == 200, response.text


# --- Awkward but valid images --------------------------------------------------------


@pytest.mark.parametrize("make_variant", photo_variants.AWKWARD_VARIANTS, ids=lambda make: make.__name__)
def test_awkward_photo_matches_reference(make_variant, photo, facade_client):
    variant = make_variant(photo)

    from_variant = top_k(classify_photo(facade_client, variant.data, f"{variant.name}.bin"))
    from_reference = top_k(classify_photo(facade_client, variant.reference_png, "reference.png"))

    assert max_difference(from_variant, from_reference) <= SAME_IMAGE_TOLERANCE, (from_variant, from_reference)
    if variant.decoy_png is not None:
        from_decoy = top_k(classify_photo(facade_client, variant.decoy_png, "decoy.png"))
        assert max_difference(from_decoy, from_reference) > DECOY_MIN_DIFFERENCE, (
            "the model answers the wrongly decoded image like the right one, so this case cannot detect the mistake",
            from_decoy,
            from_reference,
        )


# --- Files that are not decodable images ---------------------------------------------


def _undecodable_cases(photo_bytes: bytes, photo: Image.Image) -> dict[str, tuple[bytes, int, str]]:
    """Name -> (file bytes, expected status, pattern the message must contain)."""
    not_supported = r"not an image in a supported format"
    return {
        "truncated-jpeg": (photo_variants.truncated_jpeg(photo_bytes), 400, r"truncated"),
        "random-bytes": (os.urandom(8192), 415, not_supported),
        "text-named-jpg": (b"name,price\nStriped sweater,19.99\n" * 20, 415, not_supported),
        "heic": (photo_variants.heic_header(), 415, not_supported),
        "windows-icon": (photo_variants.icon_file(photo), 415, not_supported),
    }


@pytest.mark.parametrize("case", ["truncated-jpeg", "random-bytes", "text-named-jpg", "heic", "windows-icon"])
def test_undecodable_file_rejected_worker_survives(case, photo_bytes, photo, facade_client, torchserve, classifier_pids):
    data, expected_status, message_pattern = _undecodable_cases(photo_bytes, photo)[case]

    response = classify_photo(facade_client, data, "photo.jpg")

    assert response.status_code == expected_status, response.text
    assert response.json()["error"] == "rejected_by_model"
    assert re.search(message_pattern, response.json()["message"]), response.text
    assert_no_stack_trace(response)
    assert_worker_survived(torchserve, facade_client, photo_bytes, classifier_pids)


# --- Decompression bombs -------------------------------------------------------------


def peak_resident_kib(pid: int) -> int:
    """Return VmHWM, the peak resident set size in KiB, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM line in /proc/{pid}/status")


def reset_peak_resident(pid: int) -> bool:
    """Reset VmHWM to the current resident size; return False where the kernel does not allow it."""
    # Writing 5 to clear_refs resets the peak (Linux 4.0 and later). It needs the
    # permission to write to the process's /proc files, which the owner has.
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


BOMBS = {
    # Above Pillow's own limit (2 x 89.5 MP), so Image.open raises DecompressionBombError.
    # The message still names the handler's limit (max_image_pixels), not Pillow's.
    "png-10-gigapixel": (lambda jpeg: photo_variants.png_bomb(100_000, 100_000), r"more pixels than the limit of 50000000;"),
    # Below Pillow's limit but above the handler's 50 MP, so the handler's header check rejects it.
    "png-60-megapixel": (lambda jpeg: photo_variants.png_bomb(8000, 7500), r"8000 x 7500 = 60000000 pixels"),
    "jpeg-4-gigapixel": (lambda jpeg: photo_variants.jpeg_bomb(jpeg, 65_000, 65_000), r"more pixels than the limit of 50000000;"),
    "jpeg-81-megapixel": (lambda jpeg: photo_variants.jpeg_bomb(jpeg, 9000, 9000), r"9000 x 9000 = 81000000 pixels"),
}

# A full decode of the smallest bomb (60 MP greyscale) allocates 60 MB, far above what
# rejecting a header needs.
MAX_PEAK_GROWTH_KIB = 40 * 1024


@pytest.mark.parametrize("case", sorted(BOMBS))
def test_decompression_bomb_rejected_before_decode(case, photo_bytes, facade_client, torchserve, classifier_pids):
    make_bomb, message_pattern = BOMBS[case]
    data = make_bomb(photo_bytes)
    assert len(data) < 64 * 1024, "a bomb must be a small file"
    worker_pid = classifier_pids[0]
    measure_peak = Path(f"/proc/{worker_pid}/clear_refs").exists() and reset_peak_resident(worker_pid)
    if measure_peak:
        peak_before = peak_resident_kib(worker_pid)

    response = classify_photo(facade_client, data, "bomb.png")

    assert response.status_code == 413, response.text
    assert re.search(message_pattern, response.json()["message"]), response.text
    if measure_peak:
        growth = peak_resident_kib(worker_pid) - peak_before
        assert growth < MAX_PEAK_GROWTH_KIB, f"the worker's peak memory grew by {growth} KiB, as if the bomb was decoded"
    assert_worker_survived(torchserve, facade_client, photo_bytes, classifier_pids)


# --- One bad image in a batch --------------------------------------------------------


def batches_larger_than_one(metrics_text: str, model: str) -> float:
    """Count the model's handler calls with more than one request, from the HandlerBatchSize histogram."""
    labels = rf'ModelName="{model}"[^}}]*'
    total = re.search(rf"^HandlerBatchSize_count{{{labels}}} ([0-9.eE+]+)", metrics_text, re.MULTILINE)
    singles = re.search(rf'^HandlerBatchSize_bucket{{{labels}le="1.0",}} ([0-9.eE+]+)', metrics_text, re.MULTILINE)
    if total is None or singles is None:
        return 0.0
    return float(total.group(1)) - float(singles.group(1))


async def send_batch(base_url: str, path: str, headers: dict, bodies: list[dict]) -> list[httpx.Response]:
    """Send all requests at once on pre-opened connections, so they reach the server together."""
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60, limits=limits) as client:
        # Opening the connections first keeps connection setup out of the burst.
        await asyncio.gather(*(client.get("/ping" if "predictions" in path else "/healthz") for _ in bodies))
        return await asyncio.gather(*(client.post(path, **body) for body in bodies))


def mixed_batch_bodies(photo_bytes: bytes, bad_index: int, as_form: bool) -> list[dict]:
    bad = photo_variants.truncated_jpeg(photo_bytes)
    contents = [bad if index == bad_index else photo_bytes for index in range(BATCH_SIZE)]
    if as_form:
        return [{"files": {"image": ("photo.jpg", content, "image/jpeg")}} for content in contents]
    return [{"content": content, "headers": {"Content-Type": "application/octet-stream"}} for content in contents]


def assert_one_rejected(responses: list[httpx.Response], bad_index: int) -> None:
    statuses = [response.status_code for response in responses]
    assert statuses[bad_index] == 400, responses[bad_index].text
    assert statuses[:bad_index] + statuses[bad_index + 1 :] == [200] * (BATCH_SIZE - 1), statuses


@pytest.mark.parametrize("route", ["torchserve", "facade"])
def test_mixed_batch_one_bad_seven_good(route, photo_bytes, torchserve, facade, classifier_pids):
    if route == "torchserve":
        base_url, path, headers = torchserve.inference_url, f"/predictions/{CLASSIFIER}", torchserve.inference_headers()
    else:
        base_url, path, headers = facade.base_url, "/v1/classify", {}
    bad_index = 3

    batched = 0.0
    for _ in range(MAX_BATCH_ATTEMPTS):
        before = batches_larger_than_one(httpx.get(f"{torchserve.metrics_url}/metrics", timeout=10).text, CLASSIFIER)
        bodies = mixed_batch_bodies(photo_bytes, bad_index, as_form=route == "facade")
        responses = asyncio.run(send_batch(base_url, path, headers, bodies))
        assert_one_rejected(responses, bad_index)

        after = batches_larger_than_one(httpx.get(f"{torchserve.metrics_url}/metrics", timeout=10).text, CLASSIFIER)
        batched = after - before
        if batched > 0:
            break

    assert batched > 0, f"no burst of {BATCH_SIZE} requests formed a batch in {MAX_BATCH_ATTEMPTS} attempts"
    assert worker_pids(torchserve, CLASSIFIER) == classifier_pids
