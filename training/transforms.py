"""Image transforms for training and evaluation.

The evaluation transform is the contract with serving: `preprocessing_spec`
describes it as plain data, the export writes that into the model manifest, and the
image handler rebuilds the same tensor with Pillow and NumPy from the manifest.
"""

from torchvision import transforms as T

# ImageNet statistics, because ResNet50's pretrained weights expect them; SimpleCNN
# uses the same values so both models share one preprocessing.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def eval_transform(image_size: int) -> T.Compose:
    """Build the evaluation transform: resize to a square, scale to [0, 1], normalise."""
    return T.Compose(
        [
            T.Resize((image_size, image_size), interpolation=T.InterpolationMode.BILINEAR, antialias=True),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def train_transform(image_size: int) -> T.Compose:
    """Build the augmenting training transform: random resized crop, flip, colour jitter."""
    return T.Compose(
        [
            T.RandomResizedCrop(image_size, scale=(0.6, 1.0), ratio=(0.6, 1.4)),
            T.RandomHorizontalFlip(),
            T.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def preprocessing_spec(image_size: int) -> dict:
    """Describe `eval_transform(image_size)` as JSON-ready data for the model manifest."""
    return {
        "resize": [image_size, image_size],
        "interpolation": "bilinear",
        "crop": None,
        "scale": 1.0 / 255.0,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "colour_order": "RGB",
        "layout": "NCHW",
        "dtype": "float32",
    }
