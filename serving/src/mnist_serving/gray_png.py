"""Plain 8-bit grayscale PNGs decoded by Pillow's C inflater, without its PNG plugin.

Pillow's plugin parses the chunks and sets up the decoder in Python: ~20 us of
the ~25 us it takes to decode a 28x28 digit. The usual upload (and what MNIST
tools write) is a plain 8-bit grayscale PNG: IHDR, IDAT..., IEND. For exactly
those, `gray_png` reads the chunks itself (checking every CRC, as Pillow does)
and hands the compressed pixels to the decoder Pillow itself would use
(`Image.frombytes(..., "zip")`). Anything else, or anything wrong, gives None
and the caller takes Pillow's full path, which decodes it or says what is wrong.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHUNK = struct.Struct(">I4s")  # length, type
HEADER = struct.Struct(">IIBBBBB")  # IHDR: width, height, then the layout below
CRC = struct.Struct(">I")
# Bit depth 8, colour type 0 (gray), deflate, filter method 0, not interlaced.
GRAY8_LAYOUT = (8, 0, 0, 0, 0)


def _pixels_and_size(data: bytes, max_pixels: int) -> tuple[bytes, tuple[int, int]]:
    """The joined IDAT payload and (width, height); ValueError if not plain gray8."""
    view = memoryview(data)
    position = len(PNG_SIGNATURE)
    size: tuple[int, int] | None = None
    idat: list[memoryview] = []
    while True:
        length, kind = CHUNK.unpack_from(data, position)  # struct.error past the end
        start = position + CHUNK.size
        end = start + length
        if zlib.crc32(view[position + 4 : end]) != CRC.unpack_from(data, end)[0]:
            raise ValueError("chunk CRC mismatch")
        if size is None:  # IHDR must come first
            width, height, *layout = HEADER.unpack_from(data, start)
            if (
                kind != b"IHDR"
                or length != HEADER.size
                or tuple(layout) != GRAY8_LAYOUT
            ):
                raise ValueError("not a plain 8-bit grayscale PNG")
            if not 0 < width * height <= max_pixels:
                raise ValueError("no pixels or too many for this path")
            size = (width, height)
        elif kind == b"IDAT":
            idat.append(view[start:end])
        elif kind == b"IEND" and idat:
            return b"".join(idat), size
        else:  # PLTE, tRNS, gAMA, ... : Pillow's plugin knows what they mean
            raise ValueError(f"chunk {kind!r}")
        position = end + CRC.size


def gray_png(data: bytes, max_pixels: int) -> np.ndarray | None:
    """(height, width) uint8 pixels of a plain grayscale PNG, else None.

    None as well when it has more than `max_pixels` (the caller's checks and
    messages apply) or when anything about it is unexpected.
    """
    if not data.startswith(PNG_SIGNATURE):
        return None
    try:
        compressed, size = _pixels_and_size(data, max_pixels)
        image = Image.frombytes("L", size, compressed, "zip", "L")
    except (ValueError, OSError, struct.error):
        return None
    pixels = np.frombuffer(image.tobytes(), dtype=np.uint8)
    return pixels.reshape(size[1], size[0])
