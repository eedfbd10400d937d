"""Image files that uploads really contain, made with Pillow for the decoding tests.

Each function returns the encoded file bytes. Colours are chosen so that a test can
tell whether transparency became white, whether EXIF rotation happened and which
animation frame was used.
"""

import io
import struct
import zlib

import numpy as np
from PIL import Image

RED = (220, 20, 20)
BLUE = (20, 20, 220)
WHITE = (255, 255, 255)


def encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def rgba_png() -> bytes:
    """32 x 32 RGBA PNG: left half opaque red, right half fully transparent (black underneath)."""
    image = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    image.paste((*RED, 255), (0, 0, 16, 32))
    return encode(image, "PNG")


def palette_png_with_transparency() -> bytes:
    """32 x 32 palette PNG whose index 0 (black) is transparent and index 1 is red."""
    image = Image.new("P", (32, 32), 0)
    image.putpalette([0, 0, 0, *RED] + [0, 0, 0] * 254)
    image.paste(1, (0, 0, 16, 32))
    return encode(image, "PNG", transparency=0)


def grayscale_alpha_png() -> bytes:
    """32 x 32 LA PNG: left half opaque grey 100, right half transparent."""
    image = Image.new("LA", (32, 32), (0, 0))
    image.paste((100, 255), (0, 0, 16, 32))
    return encode(image, "PNG")


def grayscale_jpeg() -> bytes:
    """32 x 32 single-channel JPEG, grey 128."""
    return encode(Image.new("L", (32, 32), 128), "JPEG", quality=95)


def cmyk_jpeg() -> bytes:
    """32 x 32 CMYK JPEG in pure cyan, which is (0, 255, 255) in RGB."""
    return encode(Image.new("CMYK", (32, 32), (255, 0, 0, 0)), "JPEG", quality=95)


def exif_rotated_jpeg() -> bytes:
    """40 x 20 JPEG, left half red and right half blue, with EXIF Orientation 6.

    Orientation 6 means that viewers rotate the stored pixels 90 degrees clockwise, so
    the upright image is 20 x 40 with red on top and blue at the bottom.
    """
    image = Image.new("RGB", (40, 20), BLUE)
    image.paste(RED, (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def sixteen_bit_png() -> bytes:
    """32 x 1 16-bit grayscale PNG whose values step from 0 to 65535."""
    values = np.linspace(0, 65535, 32).astype(np.uint16).reshape(1, 32)
    return encode(Image.fromarray(values), "PNG")


def animated(format: str) -> bytes:
    """Two-frame animation (GIF or WEBP): a red frame, then a blue frame."""
    frames = [Image.new("RGB", (32, 32), RED), Image.new("RGB", (32, 32), BLUE)]
    return encode(frames[0], format, save_all=True, append_images=frames[1:], duration=100, loop=0)


def truncated(data: bytes) -> bytes:
    """The first half of an encoded file, as an interrupted upload leaves it."""
    return data[: len(data) // 2]


def random_bytes(size: int = 4096, seed: int = 0) -> bytes:
    """Bytes that are no image format."""
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def png_header_claiming(width: int, height: int) -> bytes:
    """A small PNG file whose header claims `width` x `height` pixels (a decompression bomb's header).

    The IDAT chunk contains only a few compressed bytes, so the file is tiny, but a
    decoder that trusted the header would allocate width x height x 3 bytes.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
