"""Preprocessing from the manifest's "preprocessing" spec, with Pillow and NumPy only.

The spec describes the training evaluation transform as data (see
`training.transforms.preprocessing_spec`). This module rebuilds that transform step by
step: Pillow resize (torchvision resizes PIL images with the same call), optional
centre crop, scaling to [0, 1] in float32, per-channel normalisation and the channel
layout. tests/handlers/test_preprocessing_parity.py checks that the result matches
torchvision to within 1e-5.
"""

import numpy as np
from PIL import Image

INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
COLOUR_ORDERS = ("RGB", "BGR")
LAYOUTS = ("NCHW", "NHWC")


class PreprocessingSpecError(ValueError):
    """The manifest's preprocessing spec has a value this module does not implement."""


class ImagePreprocessor:
    """Turns RGB Pillow images into the float32 arrays the classifier expects."""

    def __init__(self, spec: dict):
        """Validate `spec` and keep its values; raise PreprocessingSpecError naming the bad key."""
        self.height, self.width = _size_pair(spec, "resize")
        self.crop = None if spec.get("crop") is None else _size_pair(spec, "crop")
        if self.crop is not None and (self.crop[0] > self.height or self.crop[1] > self.width):
            raise PreprocessingSpecError(f"crop {list(self.crop)} is larger than resize {[self.height, self.width]}.")

        self.interpolation = _choice(spec, "interpolation", INTERPOLATIONS)
        self.colour_order = _choice(spec, "colour_order", COLOUR_ORDERS)
        self.layout = _choice(spec, "layout", LAYOUTS)
        if spec.get("dtype") != "float32":
            raise PreprocessingSpecError(f"dtype {spec.get('dtype')!r} is not supported; the classifier input is float32.")

        scale = spec.get("scale")
        if not isinstance(scale, (int, float)) or scale <= 0:
            raise PreprocessingSpecError(f"scale must be a positive number, got {scale!r}.")
        # Dividing by 255 (as torchvision's ToTensor does) instead of multiplying by 1/255
        # keeps the float32 results bit-identical to training.
        self.divisor = np.float32(1.0 / scale)

        self.mean = _channel_values(spec, "mean")
        self.std = _channel_values(spec, "std")
        if np.any(self.std <= 0):
            raise PreprocessingSpecError(f"std values must be positive, got {spec['std']}.")

    @property
    def output_size(self) -> tuple[int, int]:
        """(height, width) of the model input."""
        return self.crop if self.crop is not None else (self.height, self.width)

    def __call__(self, image: Image.Image) -> np.ndarray:
        """Convert one RGB image into a float32 array of shape [3, H, W] (NCHW) or [H, W, 3] (NHWC)."""
        if image.mode != "RGB":
            raise ValueError(f"expected an RGB image, got mode {image.mode}; decode it with image_decoding.decode_image")

        if image.size != (self.width, self.height):
            image = image.resize((self.width, self.height), self.interpolation)
        if self.crop is not None:
            image = _centre_crop(image, self.crop)

        pixels = np.asarray(image, dtype=np.uint8)
        if self.colour_order == "BGR":
            pixels = pixels[:, :, ::-1]

        values = pixels.astype(np.float32) / self.divisor
        values = (values - self.mean) / self.std
        if self.layout == "NCHW":
            values = values.transpose(2, 0, 1)
        return np.ascontiguousarray(values, dtype=np.float32)


def _centre_crop(image: Image.Image, crop: tuple[int, int]) -> Image.Image:
    # Same rounding as torchvision's CenterCrop.
    crop_height, crop_width = crop
    top = int(round((image.height - crop_height) / 2.0))
    left = int(round((image.width - crop_width) / 2.0))
    return image.crop((left, top, left + crop_width, top + crop_height))


def _size_pair(spec: dict, key: str) -> tuple[int, int]:
    value = spec.get(key)
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value)):
        raise PreprocessingSpecError(f"{key} must be [height, width] with two positive integers, got {value!r}.")
    return int(value[0]), int(value[1])


def _choice(spec: dict, key: str, allowed):
    value = spec.get(key)
    if value not in allowed:
        raise PreprocessingSpecError(f"{key} {value!r} is not supported; use one of {', '.join(allowed)}.")
    return allowed[value] if isinstance(allowed, dict) else value


def _channel_values(spec: dict, key: str) -> np.ndarray:
    value = spec.get(key)
    if not (isinstance(value, (list, tuple)) and len(value) == 3):
        raise PreprocessingSpecError(f"{key} must list three per-channel values, got {value!r}.")
    return np.asarray(value, dtype=np.float32).reshape(1, 1, 3)
