"""model_store/worker_site/sitecustomize.py: `import torch` is deferred until torch is used."""

import subprocess
import sys

import pytest

from model_store.torchserve import WORKER_SITE_DIR


def run_with_worker_site(code: str, lazy: str = "true") -> str:
    env = {"PYTHONPATH": str(WORKER_SITE_DIR), "FPS_TS_LAZY_TORCH": lazy, "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_torch_loads_on_first_use():
    code = (
        "import sys, torch\n"
        "print(type(torch).__name__, 'torch._C' in sys.modules)\n"
        "print(torch.zeros(2).sum().item(), type(sys.modules['torch']).__name__)\n"
    )
    before, after = run_with_worker_site(code).splitlines()
    assert before == "DeferredModule False"
    assert after == "0.0 module"


def test_submodule_imports_load_torch():
    code = (
        "import torch.nn.functional as F\n"
        "from torch import nn\n"
        "import torch\n"
        "print(F.relu.__module__, nn.Linear.__name__, type(torch).__name__)\n"
    )
    assert run_with_worker_site(code) == "torch.nn.functional Linear module"


@pytest.mark.parametrize("value", ["false", "0", "no", "OFF"])
def test_switch_off_loads_torch_eagerly(value):
    code = "import sys, torch\nprint(type(torch).__name__, 'torch._C' in sys.modules)\n"
    assert run_with_worker_site(code, lazy=value) == "module True"
