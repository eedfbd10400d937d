"""deploy/compose.yaml and its GPU override, checked without Docker: services, networks and wiring.

No Docker Compose runs on the development machines, so these tests read the YAML
and check what `docker compose config` would merge; they do not start containers.
"""

import pytest
import yaml

from frontend_api.settings import Settings
from tests.conftest import REPO_ROOT
from tests.deploy.test_kubernetes import ENTRYPOINT_VARIABLES

DEPLOY = REPO_ROOT / "deploy"


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict:
    return load("compose.yaml")


def test_two_services_from_one_build(compose):
    services = compose["services"]
    assert set(services) == {"torchserve", "facade"}
    for service in services.values():
        assert service["build"]["context"] == ".."
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert service["build"]["args"]["VARIANT"] == "cpu"
    assert services["torchserve"]["command"] == ["torchserve"]
    assert services["facade"]["command"] == ["facade"]


def test_only_the_facade_publishes_a_port(compose):
    services = compose["services"]
    assert "ports" not in services["torchserve"]
    assert services["facade"]["ports"] == ["${FPS_PUBLISH_ADDRESS:-127.0.0.1}:8000:8000"]


def test_torchserve_is_on_an_internal_network_only(compose):
    assert compose["networks"]["backend"]["internal"] is True
    assert compose["services"]["torchserve"]["networks"] == ["backend"]
    assert set(compose["services"]["facade"]["networks"]) == {"backend", "frontend"}


def test_facade_waits_for_a_healthy_torchserve(compose):
    facade = compose["services"]["facade"]
    assert facade["depends_on"] == {"torchserve": {"condition": "service_healthy"}}
    environment = facade["environment"]
    assert environment["FPS_TORCHSERVE_INFERENCE_URL"] == "http://torchserve:8080"
    assert environment["FPS_TORCHSERVE_MANAGEMENT_URL"] == "http://torchserve:8081"


def test_environment_names_are_known(compose):
    known = {f"FPS_{name.upper()}" for name in Settings.model_fields} | ENTRYPOINT_VARIABLES
    for name, service in compose["services"].items():
        unknown = sorted(set(service.get("environment", {})) - known)
        assert unknown == [], f"service {name} sets unknown variables {unknown}"


def test_gpu_override_reserves_one_nvidia_gpu_for_torchserve():
    override = load("compose.gpu.yaml")
    assert set(override["services"]) == {"torchserve"}
    torchserve = override["services"]["torchserve"]
    assert torchserve["build"]["args"]["VARIANT"] == "gpu"
    assert torchserve["image"].endswith(":gpu")
    devices = torchserve["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
