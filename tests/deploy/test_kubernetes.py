"""The Kubernetes manifests: schema validation offline, and the wiring between them and the code."""

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from frontend_api.app import create_app
from frontend_api.settings import Settings
from tests.conftest import REPO_ROOT

K8S = REPO_ROOT / "deploy" / "k8s"
# The oldest and newest Kubernetes releases whose schemas kubernetes-validate ships and
# that still serve every API version used here.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
TORCHSERVE_PORTS = {"inference": 8080, "management": 8081, "metrics": 8082}
FACADE_PORT = 8000
# Variables that deploy/entrypoint.py reads. Every other FPS_ variable must be a facade setting.
ENTRYPOINT_VARIABLES = set(re.findall(r'"(FPS_[A-Z_]+)"', (REPO_ROOT / "deploy" / "entrypoint.py").read_text(encoding="utf-8")))


def load_documents(path: Path) -> list[dict]:
    return [document for document in yaml.safe_load_all(path.read_text(encoding="utf-8")) if document]


def manifest_files() -> list[Path]:
    return sorted(K8S.rglob("*.yaml"))


def resources(*folders: str) -> dict[tuple[str, str], dict]:
    """Resources of the given folders under deploy/k8s, keyed by (kind, name)."""
    found = {}
    for folder in folders:
        for path in sorted((K8S / folder).glob("*.yaml")):
            for document in load_documents(path):
                found[(document["kind"], document["metadata"]["name"])] = document
    return found


def test_manifest_folders_exist():
    assert [path.relative_to(K8S).as_posix() for path in manifest_files()] == [
        "base/facade.yaml",
        "base/torchserve-config.yaml",
        "base/torchserve.yaml",
        "cpu/torchserve-deployment.yaml",
        "gpu/torchserve-deployment.yaml",
    ]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda path: path.relative_to(K8S).as_posix())
def test_manifests_pass_strict_schema_validation(path, version):
    for document in load_documents(path):
        kubernetes_validate.validate(document, version, strict=True)


def test_validator_rejects_a_misspelt_field():
    # Proves the validation above can fail: "replica" is not a Deployment field.
    document = load_documents(K8S / "base" / "facade.yaml")[0]
    broken = {**document, "spec": {**document["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_each_variant_has_deployments_services_and_autoscalers(variant):
    found = resources("base", variant)
    for name in ("fps-torchserve", "fps-facade"):
        assert ("Deployment", name) in found
        assert ("Service", name) in found
        autoscaler = found[("HorizontalPodAutoscaler", name)]
        assert autoscaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert autoscaler["spec"]["minReplicas"] <= autoscaler["spec"]["maxReplicas"]
    assert ("ConfigMap", "fps-torchserve") in found
    assert ("NetworkPolicy", "fps-torchserve") in found


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_every_container_has_requests_limits_and_probes(variant):
    for (kind, name), document in resources("base", variant).items():
        if kind != "Deployment":
            continue
        for container in document["spec"]["template"]["spec"]["containers"]:
            limits = container["resources"]["limits"]
            requests = container["resources"]["requests"]
            assert {"cpu", "memory"} <= set(requests), name
            assert {"cpu", "memory"} <= set(limits), name
            assert "readinessProbe" in container, name
            assert "livenessProbe" in container, name
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert document["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_only_the_gpu_deployment_requests_a_gpu():
    gpu = resources("gpu")[("Deployment", "fps-torchserve")]["spec"]["template"]["spec"]["containers"][0]
    cpu = resources("cpu")[("Deployment", "fps-torchserve")]["spec"]["template"]["spec"]["containers"][0]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["image"].endswith(":gpu")
    assert "nvidia.com/gpu" not in cpu["resources"]["limits"]
    assert cpu["image"].endswith(":cpu")


def facade_routes() -> set[str]:
    return {route.path for route in create_app(Settings()).routes}


def probe_paths(container: dict) -> dict[str, str]:
    return {
        probe: container[probe]["httpGet"]["path"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe")
        if probe in container
    }


def test_facade_probes_call_real_routes():
    container = resources("base")[("Deployment", "fps-facade")]["spec"]["template"]["spec"]["containers"][0]
    paths = probe_paths(container)
    assert paths == {"readinessProbe": "/readyz", "livenessProbe": "/healthz"}
    assert set(paths.values()) <= facade_routes()
    assert container["ports"] == [{"name": "http", "containerPort": FACADE_PORT}]
    assert container["args"] == ["facade"]


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_torchserve_probes_and_ports_match_its_listeners(variant):
    container = resources(variant)[("Deployment", "fps-torchserve")]["spec"]["template"]["spec"]["containers"][0]
    assert set(probe_paths(container).values()) == {"/ping"}
    assert {port["name"]: port["containerPort"] for port in container["ports"]} == TORCHSERVE_PORTS
    assert container["args"] == ["torchserve"]

    service = resources("base")[("Service", "fps-torchserve")]
    assert {port["name"]: port["port"] for port in service["spec"]["ports"]} == TORCHSERVE_PORTS


def test_facade_reaches_torchserve_through_its_service():
    container = resources("base")[("Deployment", "fps-facade")]["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["FPS_TORCHSERVE_INFERENCE_URL"] == f"http://fps-torchserve:{TORCHSERVE_PORTS['inference']}"
    assert env["FPS_TORCHSERVE_MANAGEMENT_URL"] == f"http://fps-torchserve:{TORCHSERVE_PORTS['management']}"


def facade_variables() -> set[str]:
    return {f"FPS_{name.upper()}" for name in Settings.model_fields}


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_every_fps_variable_is_read_by_someone(variant):
    known = facade_variables() | ENTRYPOINT_VARIABLES
    found = resources("base", variant)
    names = set(found[("ConfigMap", "fps-torchserve")]["data"])
    for (kind, _), document in found.items():
        if kind == "Deployment":
            for container in document["spec"]["template"]["spec"]["containers"]:
                names |= {item["name"] for item in container.get("env", [])}
    unknown = sorted(name for name in names if name not in known)
    assert unknown == []


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_torchserve_mounts_the_properties_file_it_names(variant):
    found = resources("base", variant)
    pod = found[("Deployment", "fps-torchserve")]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    named = {item["name"]: item["value"] for item in container["env"]}["FPS_TS_EXTRA_PROPERTIES"]
    mount = next(mount for mount in container["volumeMounts"] if named.startswith(mount["mountPath"] + "/"))
    volume = next(volume for volume in pod["volumes"] if volume["name"] == mount["name"])
    config_map = found[("ConfigMap", volume["configMap"]["name"])]
    key = next(item["key"] for item in volume["configMap"]["items"] if item["path"] == Path(named).name)
    assert key in config_map["data"]
    assert container["envFrom"] == [{"configMapRef": {"name": "fps-torchserve"}}]


def test_network_policy_admits_only_facade():
    policy = resources("base")[("NetworkPolicy", "fps-torchserve")]["spec"]
    api_rule = next(rule for rule in policy["ingress"] if "from" in rule)
    assert api_rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "fps-facade"}}}]
    assert sorted(port["port"] for port in api_rule["ports"]) == [8080, 8081]
    open_rules = [rule for rule in policy["ingress"] if "from" not in rule]
    assert [port["port"] for rule in open_rules for port in rule["ports"]] == [8082]
