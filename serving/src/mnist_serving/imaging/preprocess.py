"""Make any PNG or JPEG look like an MNIST digit: the one preprocessing of the service.

Every endpoint, single images and batches alike, and the training project's
evaluation of drawn digits go through `gray_to_mnist`. The steps follow how
MNIST itself was made: grayscale (alpha flattened onto white), white digit on
black (inverted when the input is dark on light), cropped to the ink's bounding
box, the longer side scaled to 20 px keeping the aspect ratio, pasted into
28x28 so that its centre of mass is in the middle, and divided by 255.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from mnist_serving.core.errors import InvalidInputError
from mnist_serving.imaging.decode import SCALE, open_image, to_grayscale

CANVAS = 28
DIGIT_BOX = 20
MIN_CONTRAST = 40.0  # ink must differ from the background by this much (0-255)
INK_FRACTION = 0.1  # pixels above this share of the peak count as ink for cropping
NO_INK = (
    "no ink found: the image is blank or its digit has too little contrast; "
    "draw or send a visible digit"
)


def normalize_polarity(gray: np.ndarray) -> np.ndarray:
    """Return white ink on a zero background, stretched so the ink peaks at 255."""
    border = np.concatenate((gray[0], gray[-1], gray[:, 0], gray[:, -1]))
    background = float(np.median(border))
    # Ink is how far a pixel is from the background, towards the ink's side.
    ink = background - gray if background > SCALE / 2 else gray - background
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        raise InvalidInputError(NO_INK)
    np.maximum(ink, 0.0, out=ink)
    ink *= SCALE / peak
    return ink


def ink_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), end-exclusive, of the pixels that carry ink."""
    mask = ink > INK_FRACTION * SCALE
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def scale_to_box(digit: np.ndarray, box: int = DIGIT_BOX) -> np.ndarray:
    """Scale so the longer side is `box` pixels, keeping the aspect ratio.

    Pillow's antialiased bilinear filter on the float image: when shrinking,
    every input pixel contributes.
    """
    height, width = digit.shape
    factor = box / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    scaled = Image.fromarray(digit).resize(size, Image.Resampling.BILINEAR)
    return np.asarray(scaled, dtype=np.float32)


def center_by_mass(digit: np.ndarray, canvas: int = CANVAS) -> np.ndarray:
    """Paste into a canvas x canvas field with the centre of mass in the middle."""
    height, width = digit.shape
    rows = digit.sum(axis=1)
    total = float(rows.sum()) or 1.0
    row_mass = float(rows @ np.arange(height)) / total
    col_mass = float(digit.sum(axis=0) @ np.arange(width)) / total
    middle = canvas / 2  # MNIST itself has its centre of mass at pixel index ~14
    top = min(max(round(middle - row_mass), 0), canvas - height)
    left = min(max(round(middle - col_mass), 0), canvas - width)
    out = np.zeros((canvas, canvas), dtype=np.float32)
    out[top : top + height, left : left + width] = digit
    return out


def gray_to_mnist(gray: np.ndarray) -> np.ndarray:
    """Turn a float32 0-255 gray array into a (28, 28) float32 array in [0, 1]."""
    ink = normalize_polarity(gray)
    top, bottom, left, right = ink_box(ink)
    field = center_by_mass(scale_to_box(ink[top:bottom, left:right]))
    field *= 1.0 / SCALE
    # Resampling can overshoot 255 by a rounding error; the model expects [0, 1].
    return np.clip(field, 0.0, 1.0, out=field)


def image_to_mnist(image: Image.Image) -> np.ndarray:
    """Turn an opened image into a (28, 28) float32 array in [0, 1]."""
    return gray_to_mnist(to_grayscale(image))


def preprocess(data: bytes, max_pixels: int) -> np.ndarray:
    """PNG or JPEG bytes to a (28, 28) float32 MNIST-like array in [0, 1]."""
    return image_to_mnist(open_image(data, max_pixels))
