"""An archive for TorchServe's stock `image_classifier` handler with this project's ResNet50 weights.

This is the baseline a TorchServe user gets without this project: eager PyTorch, the
stock handler's torchvision preprocessing (resize 256, centre crop 224), softmax and
top 5 in the handler. The archive contains three files as TorchServe's eager mode
expects them: a model file that defines exactly one nn.Module class built with no
arguments, its state dict as a .pth file, and index_to_name.json.
"""

import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

STOCK_MODEL_NAME = "stock_classifier"

# TorchServe imports the model file as a top-level module and instantiates its only
# class with no arguments, so the class count and layout are fixed here.
_MODEL_FILE_TEMPLATE = '''"""torchvision ResNet50 with a {num_classes}-class head, for TorchServe's eager-mode loader."""

from torchvision.models.resnet import Bottleneck, ResNet


class FashionResNet50(ResNet):
    def __init__(self):
        super().__init__(Bottleneck, [3, 4, 6, 3], num_classes={num_classes})
'''

_MODEL_CONFIG_TEMPLATE = """minWorkers: {workers}
maxWorkers: {workers}
batchSize: {batch_size}
maxBatchDelay: {max_batch_delay_ms}
responseTimeout: {response_timeout_s}
# Makes the stock handler record ts_handler_preprocess/inference/postprocess times.
handler:
  profile: true
"""


def read_resnet50_checkpoint(checkpoint_path: Path) -> dict:
    """Load a training checkpoint and check that it contains a ResNet50; returns the checkpoint dict."""
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    arch = checkpoint.get("arch")
    if arch != "resnet50":
        raise ValueError(
            f"The stock handler comparison needs a ResNet50 checkpoint, but {checkpoint_path} has arch {arch!r}. "
            "Pass a run trained with --arch resnet50."
        )
    return checkpoint


def write_stock_files(checkpoint: dict, directory: Path) -> dict[str, Path]:
    """Write the model file, the state dict and index_to_name.json into directory; returns their paths."""
    labels = list(checkpoint["labels"])
    paths = {
        "model_file": directory / "stock_resnet50.py",
        "serialized_file": directory / "stock_resnet50.pth",
        "index_to_name": directory / "index_to_name.json",
    }
    paths["model_file"].write_text(_MODEL_FILE_TEMPLATE.format(num_classes=len(labels)))
    torch.save(checkpoint["state_dict"], paths["serialized_file"])
    paths["index_to_name"].write_text(json.dumps({str(index): label for index, label in enumerate(labels)}, indent=1))
    return paths


def build_stock_archive(
    checkpoint_path: Path,
    export_dir: Path,
    *,
    batch_size: int = 4,
    max_batch_delay_ms: int = 1,
    workers: int = 1,
    response_timeout_s: int = 120,
    model_name: str = STOCK_MODEL_NAME,
) -> Path:
    """Pack `<model_name>.mar` for the stock image_classifier handler into export_dir; returns its path.

    The batching settings go into the archive's model-config.yaml, so the stock
    handler can be compared with this project's handler at the same settings.
    """
    checkpoint = read_resnet50_checkpoint(checkpoint_path)
    export_dir.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="stock-archive-") as scratch:
        scratch_dir = Path(scratch)
        paths = write_stock_files(checkpoint, scratch_dir)
        config_path = scratch_dir / "model-config.yaml"
        config_path.write_text(
            _MODEL_CONFIG_TEMPLATE.format(
                workers=workers,
                batch_size=batch_size,
                max_batch_delay_ms=max_batch_delay_ms,
                response_timeout_s=response_timeout_s,
            )
        )
        command = [
            sys.executable,
            "-m",
            "model_archiver.model_packaging",
            "--model-name", model_name,
            "--version", "1.0",
            "--model-file", str(paths["model_file"]),
            "--serialized-file", str(paths["serialized_file"]),
            "--handler", "image_classifier",
            "--extra-files", str(paths["index_to_name"]),
            "--config-file", str(config_path),
            "--export-path", str(export_dir),
            "--force",
        ]  # fmt: skip
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(
                f"torch-model-archiver failed with exit code {completed.returncode} for {model_name}: "
                f"{completed.stderr.strip()[-2000:]}"
            )

    archive = export_dir / f"{model_name}.mar"
    logger.info("built stock handler archive %s (batch %d, delay %d ms)", archive, batch_size, max_batch_delay_ms)
    return archive
