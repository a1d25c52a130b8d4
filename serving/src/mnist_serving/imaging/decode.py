"""PNG or JPEG bytes to a gray array, with every limit checked before the work.

Pillow does all decoding. Large images are reduced by Pillow (JPEG already
while decoding) before any NumPy work, so the cost of the later steps does not
grow with the upload.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import struct
from collections.abc import Callable

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from mnist_serving.core.errors import (
    BadImageError,
    InvalidInputError,
    TooLargeError,
    UnsupportedMediaError,
)

SCALE = 255.0
WORK_SIDE = 512  # longer side, in pixels, that an image is reduced to before NumPy
JPEG_DRAFT = 280  # JPEG decodes at the smallest DCT scale still at least this big
MAX_ASPECT = 64  # longer side / shorter side of a whole image
MAX_JPEG_SCANS = 64  # a progressive JPEG has about 10; each scan re-reads the image
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_IHDR_END = 24  # signature, IHDR length and type, width, height
JPEG_MAGIC = b"\xff\xd8\xff"
IMAGE_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/jpg": "JPEG"}
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def sniff_format(data: bytes) -> str:
    """'PNG' or 'JPEG' from the file signature; 415 for anything else."""
    if data.startswith(PNG_MAGIC):
        return "PNG"
    if data.startswith(JPEG_MAGIC):
        return "JPEG"
    raise UnsupportedMediaError(
        "image is neither PNG nor JPEG (unknown file signature); "
        "send a PNG or JPEG file"
    )


def _too_large(width: int, height: int, max_pixels: int) -> TooLargeError:
    return TooLargeError(
        f"image is {width}x{height} = {width * height} pixels, above the limit of "
        f"{max_pixels}; scale it down before sending"
    )


def open_image(
    data: bytes, max_pixels: int, max_aspect: int = MAX_ASPECT
) -> Image.Image:
    """Open PNG or JPEG bytes lazily; refuse too many pixels before decoding.

    Pillow refuses images far above its own pixel limit itself
    (DecompressionBombError); that, too, is a 413 naming our limit.
    """
    kind = check_bytes(data, max_pixels)
    try:
        image = Image.open(io.BytesIO(data), formats=(kind,))
    except Image.DecompressionBombError as exc:
        raise TooLargeError(
            f"image declares far more pixels than the limit of {max_pixels}; "
            "scale it down before sending"
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(
            "image could not be decoded: its header is damaged; "
            "send a complete PNG or JPEG file"
        ) from exc
    width, height = image.size
    if width * height > max_pixels:
        raise _too_large(width, height, max_pixels)
    if width * height == 0:
        raise InvalidInputError("image has no pixels; send a non-empty image")
    if max(width, height) > max_aspect * min(width, height):
        raise InvalidInputError(
            f"image is {width}x{height}, more than {max_aspect} times longer than it "
            "is wide; crop it to the handwriting before sending"
        )
    return image


def check_bytes(data: bytes, max_pixels: int) -> str:
    """The checks that read the bytes, not Pillow: 'PNG' or 'JPEG' if they pass.

    The signature, a PNG's declared pixels, a JPEG's scans: a 4xx at memchr
    speed, before anything is opened or handed to a child process.
    """
    if not data:
        raise InvalidInputError("image is empty; send a PNG or JPEG file")
    kind = sniff_format(data)
    if kind == "PNG":
        _check_png_size(data, max_pixels)
    else:
        _check_jpeg_scans(data)
    return kind


def _check_png_size(data: bytes, max_pixels: int) -> None:
    """The pixel limit from the IHDR chunk, before Pillow reads any other chunk.

    Pillow's open walks every chunk up to the image data, and a few MB of
    empty chunks cost a second; the PNG standard puts IHDR first, at a fixed
    offset, so its size can be checked before that walk.
    """
    if len(data) >= PNG_IHDR_END and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        if width * height > max_pixels:
            raise _too_large(width, height, max_pixels)


def _check_jpeg_scans(data: bytes) -> None:
    """Refuse progressive JPEGs of absurdly many scans before decoding them.

    libjpeg decodes every scan (start-of-scan marker FF DA) and Pillow sets no
    bound; a few MB of tiny scans cost seconds. FF DA cannot occur inside
    entropy-coded data (an FF there is followed by 00 or a restart marker), so
    counting it bounds the scans; an embedded thumbnail adds a few at most.
    The count stops at one past the bound: a bomb is refused after its first
    few KB, not after reading all of its megabytes.
    """
    scans, start = 0, 0
    while scans <= MAX_JPEG_SCANS:
        start = data.find(b"\xff\xda", start) + 2
        if start == 1:  # not found
            return
        scans += 1
    raise InvalidInputError(
        f"JPEG has more than {MAX_JPEG_SCANS} scans (start-of-scan markers); save "
        "it as a baseline JPEG or as PNG"
    )


# EXIF orientation (TIFF tag 274) to the turn that shows the picture upright,
# as the EXIF standard defines it. ImageOps.exif_transpose applies the same
# table, but it also rewrites the metadata, which a damaged block makes raise;
# only the pixels matter here. 5-8 turn the picture a quarter.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_QUARTER_TURNS = (5, 6, 7, 8)


def _orientation(image: Image.Image) -> int:
    """The image's EXIF (or XMP) orientation; 1, as stored, when it has none.

    Phones store a photo as the sensor read it and say here how to turn it.
    A damaged block is ignored, as viewers ignore it.
    """
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except (SyntaxError, ValueError, OSError, struct.error):
        return 1
    return value if value in _UPRIGHT else 1


def shown_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of the image as viewers show it, turned upright.

    `to_grayscale` turns the pixels so; boxes are given in these pixels.
    """
    width, height = image.size
    return (height, width) if _orientation(image) in _QUARTER_TURNS else (width, height)


def _upright(image: Image.Image, orientation: int) -> Image.Image:
    """`image` turned as `orientation` says (after reduction: fewer pixels)."""
    turn = _UPRIGHT.get(orientation)
    return image if turn is None else image.transpose(turn)


def _reduce(image: Image.Image, side: int) -> Image.Image:
    """Box-reduce by an integer factor so that the longer side is at most `side`."""
    factor = math.ceil(max(image.size) / side)
    return image.reduce(factor) if factor > 1 else image


def to_grayscale(image: Image.Image, work_side: int = WORK_SIDE) -> np.ndarray:
    """Decode to a float32 0-255 gray array, alpha flattened (`_paper`), reduced,
    and turned upright as its EXIF orientation says (see `shown_size`).

    The longer side of the result is at most `work_side` pixels.
    """
    try:
        orientation = _orientation(image)
        if image.format == "JPEG":
            image.draft("L", (JPEG_DRAFT, JPEG_DRAFT))
        if image.mode in _WIDE_MODES:
            return _wide_to_gray(image, work_side, orientation)
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        elif image.mode not in ("L", "RGB", *_ALPHA_MODES[:2]):
            image = image.convert("RGBA" if image.mode in _ALPHA_MODES else "L")
        image = _upright(_reduce(image, work_side), orientation)
        if image.mode in _ALPHA_MODES:
            rgba = image.convert("RGBA")
            paper = Image.new("RGBA", rgba.size, _paper(rgba))
            image = Image.alpha_composite(paper, rgba)
        if image.mode != "L":
            image = image.convert("L")
        return pixels(image, np.uint8).astype(np.float32)
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(
            f"image could not be decoded: {exc}; send a complete PNG or JPEG file"
        ) from exc


def _paper(rgba: Image.Image) -> tuple[int, int, int, int]:
    """The colour to flatten transparency onto: white, unless the strokes are light.

    Where the opaque pixels are a minority, they are the strokes of a drawing
    on a transparent canvas; light strokes (a dark-mode app's white pen) would
    vanish on white, so they go on black. A document with transparent margins
    is mostly opaque, and goes on white as before.
    """
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / SCALE
    opaque = float(alpha.sum())
    if opaque == 0 or opaque >= alpha.size / 2:
        return (255, 255, 255, 255)
    gray = np.asarray(rgba.convert("L"), dtype=np.float32)
    lightness = float((gray * alpha).sum()) / opaque
    return (0, 0, 0, 255) if lightness > SCALE / 2 else (255, 255, 255, 255)


def decode_gray(
    data: bytes,
    max_pixels: int,
    max_aspect: int,
    work_side: int | Callable[[int, int], int] = WORK_SIDE,
) -> tuple[np.ndarray, tuple[int, int]]:
    """PNG or JPEG bytes to `to_grayscale`'s array and the image's `shown_size`.

    What a child process decodes: every check of `open_image` applies.
    `work_side` is the longer side to reduce to, or a function of the size.
    """
    image = open_image(data, max_pixels, max_aspect)
    size = shown_size(image)
    side = work_side if isinstance(work_side, int) else work_side(*size)
    return to_grayscale(image, side), size


def pixels(image: Image.Image, dtype: type) -> np.ndarray:
    """The pixels as an array: frombuffer(tobytes()), cheaper than the array API."""
    data = np.frombuffer(image.tobytes(), dtype=dtype)
    return data.reshape(image.height, image.width)


def _wide_to_gray(image: Image.Image, work_side: int, orientation: int) -> np.ndarray:
    """16-bit or float images: scaled to 0-255 by their range (16-bit: 65535)."""
    mode = image.mode
    reduced = _upright(_reduce(image.convert("F"), work_side), orientation)
    values = np.asarray(reduced, dtype=np.float32)
    peak = 65535.0 if mode.startswith("I;16") else max(float(values.max()), 1.0)
    return np.clip(values * (SCALE / peak), 0, SCALE)


def decode_base64_image(text: str, max_chars: int) -> bytes:
    """Bytes of a data URL or bare base64 image, with the length capped first."""
    if len(text) > max_chars:
        raise TooLargeError(
            f"image text is {len(text)} characters, above the limit of {max_chars}; "
            "send a smaller image"
        )
    payload = text.strip()
    if payload.startswith("data:"):
        header, comma, payload = payload.partition(",")
        media_type = header[5:].split(";", 1)[0].strip().lower()
        if not comma or not header.endswith(";base64"):
            raise InvalidInputError(
                "image data URL must be base64 encoded, like "
                "'data:image/png;base64,iVBOR...'"
            )
        if media_type not in IMAGE_TYPES:
            raise UnsupportedMediaError(
                f"image data URL has type {media_type or 'none'!r}; "
                "send image/png or image/jpeg"
            )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError(
            "image is not valid base64; send a data URL or bare base64 of a PNG"
        ) from exc
