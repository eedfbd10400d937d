"""image_decoding.decode_image on real sample photos and on each awkward kind of upload."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handler_errors import InvalidInputError, PayloadTooLargeError, UnsupportedMediaTypeError
from image_decoding import decode_image
from tests.handlers import awkward_images as awkward


def pixel(image: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    return image.getpixel((x, y))


def assert_close(actual: tuple, expected: tuple, tolerance: int = 6) -> None:
    assert max(abs(a - e) for a, e in zip(actual, expected)) <= tolerance, f"{actual} is not close to {expected}"


@pytest.fixture(scope="module")
def sample_photos(sample_root) -> list[Path]:
    photos = sorted((sample_root / "hm" / "images").rglob("*.jpg"))
    assert photos, f"no photos under {sample_root / 'hm' / 'images'}"
    return photos


@pytest.fixture(scope="module")
def fullsize_photos(sample_root) -> list[Path]:
    photos = sorted((sample_root / "hm" / "fullsize").glob("*.jpg"))
    assert photos, f"no full-size photos under {sample_root / 'hm' / 'fullsize'}"
    return photos


def test_sample_photos_decode_at_stored_size(sample_photos):
    for path in sample_photos[::10]:
        with Image.open(path) as original:
            expected_size = original.size
        image = decode_image(path.read_bytes(), draft_size=(128, 128))
        assert image.mode == "RGB"
        assert image.size == expected_size, f"{path.name} was resized while decoding"


def test_sample_photo_pixels_match_pillow(sample_photos):
    path = sample_photos[0]
    with Image.open(path) as original:
        expected = np.asarray(original.convert("RGB"))
    actual = np.asarray(decode_image(path.read_bytes()))
    assert np.array_equal(actual, expected)


def test_rgba_png_composited_on_white():
    image = decode_image(awkward.rgba_png())
    assert image.mode == "RGB"
    assert pixel(image, 4, 4) == awkward.RED
    assert pixel(image, 28, 4) == awkward.WHITE


def test_palette_transparency_composited_on_white():
    image = decode_image(awkward.palette_png_with_transparency())
    assert pixel(image, 4, 4) == awkward.RED
    assert pixel(image, 28, 4) == awkward.WHITE


def test_grayscale_alpha_composited_on_white():
    image = decode_image(awkward.grayscale_alpha_png())
    assert pixel(image, 4, 4) == (100, 100, 100)
    assert pixel(image, 28, 4) == awkward.WHITE


def test_grayscale_jpeg_becomes_rgb():
    image = decode_image(awkward.grayscale_jpeg())
    assert image.mode == "RGB"
    assert_close(pixel(image, 16, 16), (128, 128, 128), tolerance=2)


def test_cmyk_jpeg_becomes_rgb():
    data = awkward.cmyk_jpeg()
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    image = decode_image(data)
    assert image.mode == "RGB"
    assert_close(pixel(image, 16, 16), (0, 255, 255))


def test_exif_orientation_applied():
    image = decode_image(awkward.exif_rotated_jpeg())
    assert image.size == (20, 40)
    assert_close(pixel(image, 10, 5), awkward.RED, tolerance=30)
    assert_close(pixel(image, 10, 35), awkward.BLUE, tolerance=30)


def test_sixteen_bit_png_scaled_to_eight_bits():
    data = awkward.sixteen_bit_png()
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    image = decode_image(data)
    values = np.asarray(image)[0, :, 0]
    assert values[0] == 0
    assert values[-1] == 255
    # Clipping at 255 (Pillow's convert("L")) would make most of the ramp white.
    assert 120 <= values[16] <= 135


@pytest.mark.parametrize("format", ["GIF", "WEBP"])
def test_animation_uses_first_frame(format):
    data = awkward.animated(format)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
    image = decode_image(data)
    assert image.mode == "RGB"
    assert_close(pixel(image, 16, 16), awkward.RED, tolerance=12)


def test_truncated_jpeg_rejected_with_400(sample_photos):
    data = awkward.truncated(sample_photos[0].read_bytes())
    with pytest.raises(InvalidInputError, match="truncated or corrupt"):
        decode_image(data)


def test_random_bytes_rejected_with_415():
    with pytest.raises(UnsupportedMediaTypeError) as raised:
        decode_image(awkward.random_bytes())
    assert raised.value.status_code == 415
    assert "JPEG" in raised.value.message


def test_empty_bytes_rejected_with_400():
    with pytest.raises(InvalidInputError, match="empty"):
        decode_image(b"")


@pytest.mark.parametrize("width,height", [(8000, 8000), (100_000, 100_000)])
def test_bomb_header_rejected_with_413(width, height):
    data = awkward.png_header_claiming(width, height)
    assert len(data) < 200
    with pytest.raises(PayloadTooLargeError) as raised:
        decode_image(data)
    assert raised.value.status_code == 413


def test_pixel_limit_is_inclusive():
    data = awkward.encode(Image.new("RGB", (10, 10), awkward.RED), "PNG")
    assert decode_image(data, max_pixels=100).size == (10, 10)
    with pytest.raises(PayloadTooLargeError, match="above the limit of 99"):
        decode_image(data, max_pixels=99)


def test_fullsize_jpeg_draft_decoded(fullsize_photos):
    path = fullsize_photos[0]
    with Image.open(path) as original:
        width, height = original.size

    full = decode_image(path.read_bytes())
    drafted = decode_image(path.read_bytes(), draft_size=(128, 128))

    assert full.size == (width, height)
    assert drafted.width < width / 2
    assert drafted.width >= 128
    assert drafted.height >= 128


def test_draft_skipped_below_min_pixels(fullsize_photos):
    data = fullsize_photos[0].read_bytes()
    with Image.open(fullsize_photos[0]) as original:
        pixels = original.width * original.height
    image = decode_image(data, draft_size=(128, 128), draft_min_pixels=pixels)
    assert image.width * image.height == pixels
