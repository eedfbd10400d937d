"""Defer importing torch in the Python processes of a TorchServe that this project starts.

`model_store/torchserve.py` puts this folder first on TorchServe's PYTHONPATH, so
Python runs this file when the launcher and each worker start.

Why: a TorchServe 0.12 worker imports torch when it starts
(`ts/protocol/otf_message_handler.py`), only to recognise handlers that return a
tensor. This project's handlers run ONNX Runtime and return JSON strings, so the
workers never use torch, yet the import cost each worker about 650 MB of RSS
(measured with torch 2.14.1 on the 2-core development machine).

How: sys.modules["torch"] starts as a placeholder module, and `import torch` returns
it without loading anything. The first read of an attribute that the placeholder
lacks (`torch.Tensor`, or `torch.__path__` for `import torch.nn`) runs the real
import, which replaces the placeholder in sys.modules, and returns the real
attribute. A handler that does use torch (the stock `image_classifier` handler in
the benchmarks) therefore loads it then and works as before.
`importlib.util.LazyLoader` does not help on Python 3.11, because the `import`
statement itself reads `__spec__` from the module, which triggers its load.
Set FPS_TS_LAZY_TORCH to false, 0, no or off to import torch at start again.

NOTE: Python imports only the first sitecustomize on sys.path, so this file hides
any other sitecustomize (coverage.py's, a distribution's) from TorchServe's processes.
"""

import importlib
import importlib.util
import os
import sys
import types

DEFERRED_MODULES = ("torch",)


class DeferredModule(types.ModuleType):
    """Placeholder for a module in sys.modules until an attribute of the real module is read."""

    def __getattr__(self, attr: str):
        # Python calls __getattr__ only for attributes the placeholder lacks, which
        # are all except __name__, __spec__, __loader__, __package__ and __doc__.
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        module = importlib.import_module(self.__name__)
        return getattr(module, attr)


def defer_import(name: str) -> None:
    """Put a DeferredModule for `name` into sys.modules unless the module is loaded or missing."""
    if name in sys.modules:
        return

    spec = importlib.util.find_spec(name)
    if spec is None:
        return  # Not installed, so a later `import` raises Python's own ModuleNotFoundError.

    placeholder = DeferredModule(name)
    placeholder.__spec__ = spec
    placeholder.__loader__ = spec.loader
    placeholder.__package__ = spec.parent
    sys.modules[name] = placeholder


OFF_VALUES = ("false", "0", "no", "off")

if os.environ.get("FPS_TS_LAZY_TORCH", "true").strip().lower() not in OFF_VALUES:
    for _name in DEFERRED_MODULES:
        defer_import(_name)
