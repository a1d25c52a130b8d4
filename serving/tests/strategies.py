"""Hypothesis strategies for image inputs: real digit drawings, and damaged ones."""

from __future__ import annotations

import io

from hypothesis import strategies as st
from PIL import Image, ImageDraw

MODES = ("L", "LA", "RGB", "RGBA", "P", "1", "I;16")
FORMATS = ("PNG", "JPEG")


@st.composite
def digit_images(draw: st.DrawFn) -> bytes:
    """A PNG or JPEG of random size, mode and polarity with a few pen strokes.

    Some come out with too little contrast or ink on purpose: those must get
    the service's own 422, never an unexpected error.
    """
    width = draw(st.integers(1, 320))
    height = draw(st.integers(1, 320))
    background = draw(st.integers(0, 255))
    ink = draw(st.integers(0, 255))
    image = Image.new("L", (width, height), background)
    pen = ImageDraw.Draw(image)
    coords = st.tuples(st.integers(0, width - 1), st.integers(0, height - 1))
    for _ in range(draw(st.integers(0, 4))):
        points = draw(st.lists(coords, min_size=2, max_size=6))
        pen.line(
            points, fill=ink, width=draw(st.integers(1, 1 + min(width, height) // 8))
        )
    fmt = draw(st.sampled_from(FORMATS))
    mode = draw(st.sampled_from(MODES if fmt == "PNG" else ("L", "RGB")))
    if mode == "I;16":
        image = image.point(lambda value: value * 257, "I").convert("I;16")
    else:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@st.composite
def damaged_images(draw: st.DrawFn) -> bytes:
    """A valid image cut short, or with bytes overwritten past its signature."""
    data = bytearray(draw(digit_images()))
    if draw(st.booleans()):
        return bytes(data[: draw(st.integers(0, len(data)))])
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(8, max(8, len(data) - 1)))
        if at < len(data):
            data[at] = draw(st.integers(0, 255))
    return bytes(data)


def any_image_bytes() -> st.SearchStrategy[bytes]:
    """Anything a client might send as an image file."""
    return st.one_of(st.binary(max_size=4096), digit_images(), damaged_images())
