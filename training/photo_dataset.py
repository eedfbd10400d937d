"""A PyTorch dataset over product photos on disk."""

from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset


def load_photo(path: str) -> Image.Image:
    """Open a photo as RGB, because some JPEGs are greyscale or CMYK."""
    with Image.open(path) as image:
        return image.convert("RGB")


class PhotoDataset(Dataset):
    """Photos and their class indices; `transform` turns a PIL image into a tensor."""

    def __init__(self, paths: Sequence[str], targets: Sequence[int], transform: Callable[[Image.Image], torch.Tensor]):
        if len(paths) != len(targets):
            raise ValueError(f"got {len(paths)} photo paths but {len(targets)} targets")
        self.paths = list(paths)
        self.targets = [int(target) for target in targets]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(load_photo(self.paths[index])), self.targets[index]
