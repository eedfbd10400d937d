"""Awkward and broken image files made from a real sample photo, for the bad-image tests.

Each awkward variant comes with a reference: the lossless PNG of the upright RGB
image that the server should see after decoding the variant (transparency
composited on white, the first frame of an animation, EXIF rotation applied). The
server must classify the variant exactly as it classifies the reference. Most
variants also come with a decoy: the image a typical decoding mistake produces
(transparency on black, EXIF ignored, the second frame). The decoy shows that the
model's output changes with that mistake, so the comparison can fail.
"""

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

# EXIF tag 0x0112 is the orientation. Value 6 means "rotate 90 degrees clockwise to display".
EXIF_ORIENTATION_TAG = 0x0112
ORIENTATION_ROTATE_90_CW = 6


@dataclass(frozen=True)
class AwkwardImage:
    """An upload in an awkward format, the PNG the server should see, and a wrongly decoded PNG."""

    name: str
    data: bytes
    reference_png: bytes
    decoy_png: bytes | None


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def background_mask(photo: Image.Image, threshold: int = 235) -> np.ndarray:
    """Return a mask that is True on the near-white background of a catalogue photo."""
    return np.asarray(photo.convert("L")) >= threshold


def _composite(rgba: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    background = Image.new("RGBA", rgba.size, (*colour, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def rgba_png(photo: Image.Image) -> AwkwardImage:
    """Build an RGBA PNG whose background is fully transparent black, as cut-out product shots are stored."""
    pixels = np.asarray(photo.convert("RGB")).copy()
    transparent = background_mask(photo)
    alpha = np.where(transparent, 0, 255).astype(np.uint8)
    pixels[transparent] = 0
    rgba = Image.fromarray(np.dstack([pixels, alpha]), mode="RGBA")
    return AwkwardImage(
        "rgba-png", png_bytes(rgba), png_bytes(_composite(rgba, (255, 255, 255))), png_bytes(_composite(rgba, (0, 0, 0)))
    )


def palette_png_with_transparency(photo: Image.Image) -> AwkwardImage:
    """Build a palette PNG whose background is the transparent palette entry."""
    palette_image = photo.convert("RGB").quantize(colors=64)
    indices = np.asarray(palette_image).copy()
    transparent_index = 63
    indices[background_mask(photo)] = transparent_index
    image = Image.fromarray(indices, mode="P")
    palette = palette_image.getpalette()
    # Black in the transparent entry, so compositing on black instead of white shows.
    palette[transparent_index * 3 : transparent_index * 3 + 3] = [0, 0, 0]
    image.putpalette(palette)
    data = encode(image, "PNG", transparency=transparent_index)

    rgba = Image.open(io.BytesIO(data)).convert("RGBA")
    return AwkwardImage(
        "palette-png-transparency",
        data,
        png_bytes(_composite(rgba, (255, 255, 255))),
        png_bytes(_composite(rgba, (0, 0, 0))),
    )


def grayscale_jpeg(photo: Image.Image) -> AwkwardImage:
    """Build a single-channel JPEG, whose grey channel the server must replicate into RGB."""
    data = encode(photo.convert("L"), "JPEG", quality=92)
    decoded = Image.open(io.BytesIO(data)).convert("RGB")
    return AwkwardImage("grayscale-jpeg", data, png_bytes(decoded), None)


def cmyk_jpeg(photo: Image.Image) -> AwkwardImage:
    """Build a four-channel CMYK JPEG, as print workflows export them."""
    data = encode(photo.convert("RGB").convert("CMYK"), "JPEG", quality=95)
    decoded = Image.open(io.BytesIO(data)).convert("RGB")
    # Reading the CMYK channels as if they were RGB gives the inverted-looking decoy.
    raw = Image.open(io.BytesIO(data))
    decoy = Image.fromarray(np.asarray(raw)[:, :, :3], mode="RGB")
    return AwkwardImage("cmyk-jpeg", data, png_bytes(decoded), png_bytes(decoy))


def exif_rotated_jpeg(photo: Image.Image) -> AwkwardImage:
    """Build a JPEG stored sideways with EXIF orientation 6, as phones save portrait photos."""
    sideways = photo.convert("RGB").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = ORIENTATION_ROTATE_90_CW
    data = encode(sideways, "JPEG", quality=95, exif=exif.tobytes())

    stored = Image.open(io.BytesIO(data))
    stored.load()
    upright = ImageOps.exif_transpose(stored).convert("RGB")
    return AwkwardImage("exif-rotated-jpeg", data, png_bytes(upright), png_bytes(stored.convert("RGB")))


def sixteen_bit_grayscale_png(photo: Image.Image) -> AwkwardImage:
    """Build a 16-bit greyscale PNG, mapping each 8-bit grey value v to v * 257 (the full 16-bit range)."""
    grey = np.asarray(photo.convert("L")).astype(np.uint16)
    data = encode(Image.fromarray(grey * 257), "PNG")
    reference = Image.fromarray(grey.astype(np.uint8), mode="L").convert("RGB")
    # Clipping at 255 instead of scaling (Pillow's plain convert("L")) makes almost every pixel white.
    decoy = Image.new("RGB", photo.size, (255, 255, 255))
    return AwkwardImage("16bit-grayscale-png", data, png_bytes(reference), png_bytes(decoy))


def sixteen_bit_rgb_png(photo: Image.Image) -> AwkwardImage:
    """Build a 48-bit RGB PNG by hand, because Pillow does not write 16-bit colour PNGs."""
    rgb8 = np.asarray(photo.convert("RGB"))
    rgb16 = rgb8.astype(">u2") * 257
    height, width, _ = rgb16.shape
    rows = b"".join(b"\x00" + rgb16[row].tobytes() for row in range(height))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)  # bit depth 16, colour type 2 (RGB)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return AwkwardImage("16bit-rgb-png", data, png_bytes(Image.fromarray(rgb8, mode="RGB")), None)


def _second_frame(photo: Image.Image) -> Image.Image:
    return ImageOps.invert(photo.convert("RGB"))


def animated_gif(photo: Image.Image) -> AwkwardImage:
    """Build a two-frame GIF of the photo and then its negative; the server must use the first frame."""
    first, second = photo.convert("RGB"), _second_frame(photo)
    data = encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)

    animation = Image.open(io.BytesIO(data))
    reference = animation.convert("RGB")
    animation.seek(1)
    decoy = animation.convert("RGB")
    return AwkwardImage("animated-gif", data, png_bytes(reference), png_bytes(decoy))


def animated_webp(photo: Image.Image) -> AwkwardImage:
    """Build a two-frame lossless WebP of the photo and then its negative."""
    first, second = photo.convert("RGB"), _second_frame(photo)
    data = encode(first, "WEBP", save_all=True, append_images=[second], duration=100, lossless=True)
    return AwkwardImage("animated-webp", data, png_bytes(first), png_bytes(second))


AWKWARD_VARIANTS = (
    rgba_png,
    palette_png_with_transparency,
    grayscale_jpeg,
    cmyk_jpeg,
    exif_rotated_jpeg,
    sixteen_bit_grayscale_png,
    sixteen_bit_rgb_png,
    animated_gif,
    animated_webp,
)


# --- Files that are not decodable images -------------------------------------------


def truncated_jpeg(jpeg: bytes) -> bytes:
    """Return the first half of a real JPEG, as an interrupted upload leaves it."""
    return jpeg[: len(jpeg) // 2]


def heic_header() -> bytes:
    """Build the start of an HEIC file (an ISO-BMFF `ftyp` box with brand heic), which Pillow cannot decode."""
    ftyp = b"ftypheic" + b"\x00\x00\x00\x00" + b"mif1heic"
    box = struct.pack(">I", 8 + len(ftyp) - 4) + ftyp
    return box + b"\x00" * 2048


def icon_file(photo: Image.Image) -> bytes:
    """Build a Windows icon, which Pillow can read but the server rejects because it accepts only photo formats."""
    return encode(photo.convert("RGB").resize((64, 64)), "ICO")


def png_bomb(width: int, height: int) -> bytes:
    """Build a PNG of a few hundred bytes that declares width x height greyscale pixels.

    Only the first rows of pixel data exist, so only a decoder that allocates the full
    image from the header before reading the data spends memory on it.
    """

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 4, level=9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def jpeg_bomb(jpeg: bytes, width: int, height: int) -> bytes:
    """Patch the frame header (SOF0 or SOF2) of a real JPEG to declare width x height pixels."""
    position = 2
    while position < len(jpeg) - 9:
        if jpeg[position] != 0xFF:
            raise ValueError(f"not a JPEG marker at byte {position}")
        marker = jpeg[position + 1]
        length = struct.unpack(">H", jpeg[position + 2 : position + 4])[0]
        if marker in (0xC0, 0xC2):
            patched = bytearray(jpeg)
            patched[position + 5 : position + 9] = struct.pack(">HH", height, width)
            return bytes(patched)
        position += 2 + length
    raise ValueError("no SOF0 or SOF2 frame header found in the JPEG")
