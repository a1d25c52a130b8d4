"""The plain-grayscale PNG fast path: Pillow's pixels, or None for anything else."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import png
from mnist_serving.errors import BadImageError
from mnist_serving.gray_png import PNG_SIGNATURE, gray_png
from mnist_serving.preprocessing import image_to_mnist, open_image, preprocess

RNG = np.random.default_rng(7)


def chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def gray8(pixels: np.ndarray, extra: bytes = b"", interlace: int = 0) -> bytes:
    """A hand-made gray8 PNG (filter 0 rows), optionally with an extra chunk."""
    height, width = pixels.shape
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, interlace)
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)
    idat = zlib.compress(raw)
    half = len(idat) // 2  # two IDAT chunks, as big images have
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", idat[:half])
        + chunk(b"IDAT", idat[half:])
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("size", [(28, 28), (1, 1), (3, 200), (311, 97)])
def test_pixels_are_pillows(size):
    pixels = RNG.integers(0, 256, size=size, dtype=np.uint8)
    for data in (png(pixels), gray8(pixels)):  # Pillow's filters, and ours
        np.testing.assert_array_equal(gray_png(data, 10**6), pixels)
        if min(size) > 1:  # a single pixel has no ink to preprocess
            np.testing.assert_array_equal(
                preprocess(data, 10**6), image_to_mnist(open_image(data, 10**6))
            )


@pytest.mark.parametrize(
    "data",
    [
        png(np.zeros((8, 8, 3), np.uint8)),  # RGB
        png(np.zeros((8, 8), np.uint8), mode="P"),  # palette
        png(np.zeros((8, 8), np.uint16) + 300),  # 16-bit
        gray8(np.zeros((8, 8), np.uint8), interlace=1),  # Adam7
        gray8(np.zeros((8, 8), np.uint8), extra=chunk(b"tRNS", b"\x00\x00")),
        gray8(np.zeros((8, 8), np.uint8), extra=chunk(b"gAMA", b"\x00\x00\xb1\x8f")),
        b"\xff\xd8\xff\xe0 a JPEG",
    ],
    ids=["rgb", "palette", "16-bit", "interlaced", "tRNS", "gAMA", "jpeg"],
)
def test_anything_but_plain_gray8_is_left_to_pillow(data):
    assert gray_png(data, 10**6) is None


def test_damaged_files_are_left_to_pillow_and_refused_by_it():
    good = gray8(RNG.integers(0, 256, size=(28, 28), dtype=np.uint8))
    bad_crc = bytearray(good)
    bad_crc[40] ^= 0xFF  # inside the first IDAT
    bad_data = gray8(np.zeros((28, 28), np.uint8))[:-40] + chunk(b"IEND", b"")
    for data in (bytes(bad_crc), good[:60], bad_data):
        assert gray_png(data, 10**6) is None
        with pytest.raises(BadImageError):
            preprocess(data, 10**6)


def test_too_many_pixels_is_left_to_the_callers_check():
    data = gray8(np.zeros((30, 30), np.uint8))
    assert gray_png(data, 899) is None
    assert gray_png(data, 900) is not None


def test_a_real_drawing_is_the_same_either_way(sample):
    buffer = io.BytesIO()
    Image.fromarray(255 - sample["images"][9]).save(buffer, format="PNG")
    data = buffer.getvalue()
    assert gray_png(data, 10**6) is not None
    np.testing.assert_array_equal(
        preprocess(data, 10**6), image_to_mnist(open_image(data, 10**6))
    )
