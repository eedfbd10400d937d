"""The serving image installs only deploy/requirements-*.txt and torch: its code must not need more.

The test runs the serving code paths in a fresh interpreter that rejects imports of
the project's training and export packages and every third-party package that
pyproject.toml lists but the image leaves out (pandas, scikit-learn, torchvision,
onnx, ...). An import of one of them fails the test with the module's name.
"""

import importlib.metadata
import re
import subprocess
import sys
import textwrap
import tomllib

from packaging.requirements import Requirement

from tests.conftest import REPO_ROOT

IMAGE_REQUIREMENTS = ("requirements-serve.txt", "requirements-cpu.txt")
# Installed in the image by a separate command (see the Dockerfile's runtime stage).
IMAGE_EXTRA_DISTRIBUTIONS = ("torch",)
PROJECT_PACKAGES_NOT_IN_IMAGE = ("training", "export", "benchmarks")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def image_distributions() -> set[str]:
    names = set(IMAGE_EXTRA_DISTRIBUTIONS)
    for file_name in IMAGE_REQUIREMENTS:
        for line in (REPO_ROOT / "deploy" / file_name).read_text(encoding="utf-8").splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r"):
                names.add(Requirement(line).name)
    return {normalise(name) for name in names}


def dependency_closure(names: set[str]) -> set[str]:
    """Return `names` and everything they require (extras ignored), as far as it is installed here."""
    closure, pending = set(), list(names)
    while pending:
        name = pending.pop()
        if name in closure:
            continue
        closure.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for requirement in map(Requirement, requires):
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(normalise(requirement.name))
    return closure


def blocked_modules() -> list[str]:
    """Top-level modules of pyproject dependencies that the image does not install, plus project packages."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {normalise(Requirement(line).name) for line in project["dependencies"]}
    excluded = declared - dependency_closure(image_distributions())

    modules = set(PROJECT_PACKAGES_NOT_IN_IMAGE)
    for module, distributions in importlib.metadata.packages_distributions().items():
        if any(normalise(distribution) in excluded for distribution in distributions) and module.isidentifier():
            modules.add(module)
    return sorted(modules)


SERVING_PATHS = textwrap.dedent(
    """
    import importlib.abc
    import runpy
    import sys

    BLOCKED = set(sys.argv[1].split(","))


    class BlockTrainingPackages(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"the serving image does not contain {name}")
            return None


    sys.meta_path.insert(0, BlockTrainingPackages())
    sys.path[:0] = [sys.argv[2], sys.argv[2] + "/handlers"]

    entrypoint = runpy.run_path(sys.argv[2] + "/deploy/entrypoint.py", run_name="entrypoint")
    for command in ("all", "torchserve", "facade"):
        assert entrypoint["main"]([command, "--dry-run"]) == 0, command

    import frontend_api.__main__
    import frontend_api.stack
    import model_store.__main__
    from frontend_api.app import create_app

    create_app()

    import image_handler
    import price_handler

    print("serving imports ok")
    """
)


def test_blocked_list_names_the_training_stack():
    blocked = blocked_modules()
    for module in ("training", "export", "pandas", "sklearn", "torchvision", "skl2onnx", "model_archiver"):
        assert module in blocked
    for module in ("onnxruntime", "ts", "fastapi", "yaml", "PIL", "torch"):
        assert module not in blocked


def test_serving_code_needs_only_image_packages(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", SERVING_PATHS, ",".join(blocked_modules()), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "FPS_WORK_DIR": str(tmp_path / "work"), "LANG": "C.UTF-8"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "serving imports ok" in result.stdout
