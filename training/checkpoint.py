"""The classifier checkpoint file: weights plus what export needs to rebuild the model."""

from pathlib import Path

import torch
from torch import nn

from training.models import build_model

CHECKPOINT_NAME = "model.pt"


def save_checkpoint(path: Path, model: nn.Module, arch: str, labels: list[str], image_size: int, metrics: dict) -> None:
    """Write weights, architecture, labels in output order, input size and validation metrics."""
    torch.save(
        {
            "arch": arch,
            "labels": list(labels),
            "image_size": image_size,
            "state_dict": model.state_dict(),
            "metrics": metrics,
        },
        path,
    )


def load_checkpoint(path: Path) -> tuple[nn.Module, dict]:
    """Rebuild the model in eval mode from a checkpoint; returns the model and the checkpoint's metadata."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(checkpoint["arch"], num_classes=len(checkpoint["labels"]))
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    metadata = {key: value for key, value in checkpoint.items() if key != "state_dict"}
    return model, metadata
