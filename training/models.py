"""Model builders: the SimpleCNN baseline and torchvision's ResNet50."""

from pathlib import Path

import torch
from torch import nn
from torchvision import models as tv_models

ARCHITECTURES = ("simplecnn", "resnet50")

# ResNet50 blocks from the head backwards; `--trainable-layers N` unfreezes the
# first N entries (1 = head only, 5 = head + layer4..layer1, 6 = all).
RESNET_TRAINABLE_ORDER = ("fc", "layer4", "layer3", "layer2", "layer1", "stem")


class SimpleCNN(nn.Module):
    """Four conv-batchnorm-ReLU-maxpool blocks, global average pooling and a linear head.

    Global pooling makes the network independent of the input size, so the same
    architecture trains at 64 px on the CPU and at 224 px on a GPU.
    """

    def __init__(self, num_classes: int, width: int = 32, dropout: float = 0.3):
        super().__init__()
        channels = [3, width, width * 2, width * 4, width * 8]
        blocks = []
        for in_ch, out_ch in zip(channels[:-1], channels[1:]):
            blocks += [
                nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels[-1], num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


class WeightsUnavailableError(RuntimeError):
    """The requested pretrained weights could not be loaded."""


def _load_imagenet_weights() -> tv_models.ResNet50_Weights:
    weights = tv_models.ResNet50_Weights.IMAGENET1K_V2
    try:
        # Downloads into the torch hub cache on first use, then reads the cached file.
        weights.get_state_dict(progress=True)
    except OSError as error:
        raise WeightsUnavailableError(
            f"Could not download the ImageNet weights for ResNet50 ({error}). "
            f"On an offline machine, download {weights.url} elsewhere and pass the file "
            "with --weights PATH."
        ) from error
    return weights


def build_resnet50(num_classes: int, weights: str = "none") -> nn.Module:
    """Build ResNet50 with a new head; `weights` is "none", "imagenet" or a local file path."""
    if weights == "imagenet":
        model = tv_models.resnet50(weights=_load_imagenet_weights())
    else:
        model = tv_models.resnet50(weights=None)
        if weights != "none":
            path = Path(weights)
            if not path.is_file():
                raise WeightsUnavailableError(f"Weights file not found: {path}. Pass an existing .pth file, 'imagenet' or 'none'.")
            state = torch.load(path, map_location="cpu", weights_only=True)
            # Accept torchvision's own files and our checkpoints, whose weights sit under "state_dict".
            state = state.get("state_dict", state)
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            missing, _ = model.load_state_dict(state, strict=False)
            unexpected_missing = [k for k in missing if not k.startswith("fc.")]
            if unexpected_missing:
                raise WeightsUnavailableError(f"{path} is not a ResNet50 state dict: missing {unexpected_missing[:3]} ...")
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def set_trainable_layers(model: nn.Module, trainable_layers: int) -> None:
    """Freeze ResNet50 except the first `trainable_layers` blocks of RESNET_TRAINABLE_ORDER."""
    if not 1 <= trainable_layers <= len(RESNET_TRAINABLE_ORDER):
        raise ValueError(f"trainable_layers must be 1..{len(RESNET_TRAINABLE_ORDER)}, got {trainable_layers}")
    trainable = set(RESNET_TRAINABLE_ORDER[:trainable_layers])
    for name, parameter in model.named_parameters():
        block = name.split(".")[0]
        block = block if block in RESNET_TRAINABLE_ORDER else "stem"
        parameter.requires_grad = block in trainable


def build_model(arch: str, num_classes: int, weights: str = "none", trainable_layers: int = 6) -> nn.Module:
    """Build a classifier by architecture name."""
    if arch == "simplecnn":
        if weights != "none":
            raise ValueError("SimpleCNN trains from scratch; use --weights none.")
        return SimpleCNN(num_classes)
    if arch == "resnet50":
        model = build_resnet50(num_classes, weights)
        set_trainable_layers(model, trainable_layers)
        return model
    raise ValueError(f"Unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}.")
