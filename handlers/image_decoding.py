"""Robust decoding of uploaded image bytes into an 8-bit RGB Pillow image.

Uploads come from browsers, phones and scripts, so decoding accepts what those send and
turns it into what the model was trained on: RGB photos upright on a light background.

- EXIF orientation is applied, because phones store portrait photos rotated.
- Transparent images (RGBA, LA, palette or grey/RGB with a transparent colour) are
  composited on white, the background of catalogue photos, instead of on black.
- Grayscale, CMYK, 16-bit and other modes are converted to RGB.
- Animated GIF and WebP files contribute their first frame.
- The pixel count is checked from the header before any pixel data is decoded, so a
  small file that claims a huge size (a decompression bomb) is rejected cheaply.
- Large JPEGs are decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling through
  `Image.draft`), which is several times faster than a full decode followed by resizing.
"""

import io
import logging

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from handler_errors import InvalidInputError, PayloadTooLargeError, UnsupportedMediaTypeError

logger = logging.getLogger(__name__)

# Formats that uploads use. Restricting Image.open to these keeps Pillow's rarer
# decoders away from untrusted bytes. Pillow opens MPO files (the multi-picture JPEG
# that many phones write) through its JPEG plugin, so "JPEG" covers them.
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")

# A 48-megapixel phone photo (8000 x 6000) fits. Decoding 50 MP without draft
# scaling (PNG, WebP) takes about 200 MB as RGBA, per worker.
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000

# Photos at or below this size decode at full scale, exactly as in training, where the
# stored photos have at most 360 x 540 pixels. Larger photos (uploads from cameras and
# phones) may be draft-decoded.
DEFAULT_DRAFT_MIN_PIXELS = 1_000_000

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def decode_image(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    draft_size: tuple[int, int] | None = None,
    draft_min_pixels: int = DEFAULT_DRAFT_MIN_PIXELS,
) -> Image.Image:
    """Decode image bytes into a loaded, upright 8-bit RGB image.

    `draft_size` is the smallest (width, height) that a draft-decoded JPEG must keep. It
    applies only to JPEGs with more than `draft_min_pixels` pixels; None disables draft decoding.
    Raises InvalidInputError (400) for empty, truncated or corrupt data,
    PayloadTooLargeError (413) above `max_pixels`, and UnsupportedMediaTypeError (415)
    for data that is not an image in SUPPORTED_FORMATS.
    """
    if not data:
        raise InvalidInputError("The image is empty; send the bytes of a JPEG, PNG or WebP file.")

    image = _open(data, max_pixels)
    _check_pixel_count(image, max_pixels)

    if getattr(image, "n_frames", 1) > 1:
        # Image.open leaves the file at its first frame; only that frame is decoded.
        logger.debug("Using the first of %d frames of a %s image", image.n_frames, image.format)

    if draft_size is not None and image.format in ("JPEG", "MPO") and image.width * image.height > draft_min_pixels:
        image.draft("RGB", draft_size)

    _load(image, max_pixels)
    image = _apply_exif_orientation(image)
    return to_rgb(image)


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    except UnidentifiedImageError as error:
        raise UnsupportedMediaTypeError(
            f"The data ({len(data)} bytes) is not an image in a supported format; "
            f"send one of {', '.join(SUPPORTED_FORMATS)}."
        ) from error
    except Image.DecompressionBombError as error:
        # Pillow's own check fires at twice its MAX_IMAGE_PIXELS, before _check_pixel_count
        # can run, so the message names the handler's limit instead of Pillow's.
        raise _too_many_pixels(max_pixels) from error
    except (OSError, SyntaxError, ValueError) as error:
        raise InvalidInputError(f"The image header is corrupt ({error}); upload the original file again.") from error


def _check_pixel_count(image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidInputError(f"The image header declares a size of {width} x {height} pixels; upload a non-empty image.")

    pixels = width * height
    if pixels > max_pixels:
        raise PayloadTooLargeError(
            f"The image has {width} x {height} = {pixels} pixels, above the limit of {max_pixels}; "
            "downscale it before uploading (a long side of 2000 pixels is plenty)."
        )


def _too_many_pixels(max_pixels: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The image has more pixels than the limit of {max_pixels}; "
        "downscale it before uploading (a long side of 2000 pixels is plenty)."
    )


def _load(image: Image.Image, max_pixels: int) -> None:
    try:
        image.load()
    except Image.DecompressionBombError as error:
        raise _too_many_pixels(max_pixels) from error
    except (OSError, SyntaxError, ValueError) as error:
        # Pillow reports a truncated file as OSError("image file is truncated ...").
        raise InvalidInputError(
            f"The {image.format} image data is truncated or corrupt ({error}); upload the complete file."
        ) from error


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError) as error:
        # Edited photos often carry a damaged EXIF block. The pixels are still valid,
        # so the photo is used as stored instead of rejected.
        logger.debug("Ignoring unreadable EXIF orientation: %s", error)
        return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert an image of any Pillow mode to 8-bit RGB, compositing transparency on white."""
    if image.mode in _SIXTEEN_BIT_MODES:
        image = _sixteen_bit_to_grayscale(image)

    if image.mode == "F":
        raise UnsupportedMediaTypeError(
            "Floating-point images (mode F, for example from 32-bit TIFF) have no fixed value range; "
            "convert the image to 8-bit RGB before uploading."
        )

    has_transparency = image.mode in _ALPHA_MODES or "transparency" in image.info
    if has_transparency:
        return _composite_on_white(image)

    if image.mode == "RGB":
        return image
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise UnsupportedMediaTypeError(
            f"Images in mode {image.mode} cannot be converted to RGB ({error}); upload an RGB image."
        ) from error


def _sixteen_bit_to_grayscale(image: Image.Image) -> Image.Image:
    # Pillow 13's convert("L") clips 16-bit values at 255, which turns most of the
    # image white, so the full 0..65535 range is scaled to 0..255 instead. Mode "I" (32-bit
    # integers, used by some PNG and TIFF readers) is assumed to hold 16-bit values.
    values = np.asarray(image).astype(np.int64)
    values = np.clip(values, 0, 65535)
    scaled = ((values * 255 + 32767) // 65535).astype(np.uint8)
    return Image.fromarray(scaled)


def _composite_on_white(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")
