"""Fixtures and helpers of the hardening tests: real photos, worker pids and private stacks.

Tests that stop TorchServe, kill its workers or fill its queue run against a private
stack (their own TorchServe and facade), so the session's shared servers stay intact
for the other tests.
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from frontend_api.archives import price_fields_from_archive
from model_store.torchserve import ServerConfig, TorchServe
from tests.facade.conftest import facade_client, sample_products  # noqa: F401 - fixtures shared with the facade tests
from tests.facade_fixtures import RunningFacade, start_facade, stop_facade

CLASSIFIER = "fashion_classifier"
PRICE_MODEL = "price_regressor"


@dataclass
class PrivateStack:
    """A TorchServe and a facade in front of it, owned by one test module."""

    torchserve: TorchServe
    facade: RunningFacade

    @property
    def facade_url(self) -> str:
        return self.facade.base_url


def worker_pids(server: TorchServe, model: str) -> list[int]:
    """Return the pids of the model's READY workers, from the management API."""
    workers = server.describe(model)[0].get("workers", [])
    return sorted(worker["pid"] for worker in workers if worker.get("status") == "READY")


@contextlib.contextmanager
def private_stack(model_store_dir: Path, work_dir: Path, facade_env: dict[str, str] | None = None, **config) -> Iterator[PrivateStack]:
    """Start TorchServe with `config` (ServerConfig fields) and a facade with `facade_env`; stop both afterwards."""
    server = TorchServe(ServerConfig(model_store=model_store_dir, **config).with_free_ports(), work_dir / "torchserve")
    server.start()
    facade = None
    try:
        settings_env = {
            "FPS_TORCHSERVE_INFERENCE_URL": server.inference_url,
            "FPS_TORCHSERVE_MANAGEMENT_URL": server.management_url,
            "FPS_TORCHSERVE_INFERENCE_KEY": server.inference_key or "",
            "FPS_TORCHSERVE_MANAGEMENT_KEY": server.management_key or "",
            "FPS_PRICE_FIELDS": ",".join(price_fields_from_archive(model_store_dir / f"{PRICE_MODEL}.mar")),
            "FPS_LOG_LEVEL": "INFO",
            **(facade_env or {}),
        }
        facade = start_facade(settings_env, work_dir / "facade.log")
        yield PrivateStack(server, facade)
    finally:
        if facade is not None:
            stop_facade(facade)
        server.stop()


@pytest.fixture(scope="session")
def photo_path(sample_products) -> Path:
    """A real product photo from the bundled sample."""
    return sample_products["Garment Upper body"].photo


@pytest.fixture(scope="session")
def photo_bytes(photo_path) -> bytes:
    return photo_path.read_bytes()


@pytest.fixture(scope="session")
def product_fields(sample_products) -> dict[str, str]:
    """The text of a real article in the price model's field names, without the product group."""
    return sample_products["Garment Upper body"].text_without_group()


def classify_photo(client: httpx.Client, data: bytes, filename: str = "photo.jpg") -> httpx.Response:
    """POST one file as the multipart part `image` to /v1/classify."""
    return client.post("/v1/classify", files={"image": (filename, data, "application/octet-stream")})


def assert_no_stack_trace(response: httpx.Response) -> None:
    """Fail when an error body looks like a Python or Java stack trace."""
    text = response.text
    assert "Traceback (most recent call last)" not in text, text
    assert 'File "' not in text, text
    assert "\tat org." not in text, text
    assert "at java." not in text, text
