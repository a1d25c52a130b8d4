"""Make any PNG or JPEG look like an MNIST digit: the one preprocessing of the service.

Every endpoint, single images and batches alike, and the training project's
evaluation of drawn digits go through `grays_to_mnist` (vectorised over a
stack of same-size images). The steps follow how
MNIST itself was made: grayscale (transparency flattened onto white, or onto
black under light strokes), uneven light on the paper evened out, white digit on
black (inverted when the input is dark on light), cropped to the ink's bounding
box, the longer side scaled to 20 px keeping the aspect ratio, pasted into
28x28 so that its centre of mass is in the middle, and divided by 255.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from mnist_serving.core.errors import InvalidInputError
from mnist_serving.imaging.decode import SCALE, open_image, pixels, to_grayscale

CANVAS = 28
DIGIT_BOX = 20
MIN_CONTRAST = 40.0  # ink must differ from the background by this much (0-255)
# The paper's light is estimated on blocks this share of the image's shorter
# side (at least MIN_LIGHT_BLOCKS of them); blocks this far below the fitted
# surface (0-255) are taken for ink and left out of the fit.
LIGHT_BLOCK = 0.1
MIN_LIGHT_BLOCKS = 9
PAPER_TOLERANCE = 12.0
RIDGE = 1e-6  # keeps the fit's normal equations solvable for a row of blocks
EVEN_LIGHT = 64  # paper whose level varies less than this (of 255) is left as is
INK_FRACTION = 0.1  # pixels above this share of the peak count as ink for cropping
STACK_PIXELS = 128 * 128  # batch images up to this size are preprocessed stacked
# What the preprocessing learns about each image on the way, for drift monitoring.
IMAGE_FEATURES = ("ink_fraction", "stroke_width", "log2_scale", "offset")
STROKE_INK = 0.5  # 28x28 pixels at or above this count as stroke (feature only)
NO_INK = (
    "no ink found: the image is blank or its digit has too little contrast; "
    "draw or send a visible digit"
)


class BlankImageError(InvalidInputError):
    """Image `index` of a batch has no ink (a 422 that says so)."""

    def __init__(self, index: int) -> None:
        super().__init__(NO_INK)
        self.index = index


def _paper_fit(levels: np.ndarray, light: bool) -> np.ndarray:
    """A smooth surface (quadratic in x and y) through the blocks' paper levels.

    Light on a page varies smoothly (a lamp's falloff, a phone's vignette);
    blocks mostly covered by ink sit below it (above it on dark paper), so
    they are dropped and the surface fitted again.
    """
    rows, cols = levels.shape
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    y, x = y.ravel() / max(rows - 1, 1), x.ravel() / max(cols - 1, 1)
    terms = np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=1)
    values = levels.ravel().astype(np.float64)
    used = np.ones(len(values), dtype=bool)
    for _ in range(3):
        chosen = terms[used]
        coefficients = np.linalg.solve(
            chosen.T @ chosen + RIDGE * np.eye(terms.shape[1]),
            chosen.T @ values[used],
        )
        fitted = terms @ coefficients
        below = (fitted - values) if light else (values - fitted)
        used = below <= PAPER_TOLERANCE
        if used.sum() < terms.shape[1]:
            break
    return fitted.reshape(rows, cols)


def even_light(gray: np.ndarray) -> np.ndarray:
    """`gray` with the paper's uneven light evened out, as in a phone's photo.

    The paper's level is the brightest (on dark paper, the darkest) pixel of
    each block (`LIGHT_BLOCK`), a smooth surface is fitted through those levels
    (`_paper_fit`) and scaled back to every pixel. On light paper each pixel is
    divided by its paper's light (light falls on paper and ink alike), scaled
    to the brightest paper; on dark paper, where that division would amplify
    noise, the paper's excess over the darkest paper is subtracted. Ink keeps
    its contrast to the paper around it, where one global background would
    count a shaded side of the field as ink. Paper lit evenly (its surface
    within EVEN_LIGHT) is left as it is.
    """
    height, width = gray.shape
    block = max(2, round(LIGHT_BLOCK * min(height, width)))
    rows, cols = -(-height // block), -(-width // block)
    if rows * cols < MIN_LIGHT_BLOCKS:
        return gray
    padded = np.pad(
        gray, ((0, rows * block - height), (0, cols * block - width)), "edge"
    )
    blocks = padded.reshape(rows, block, cols, block)
    border = np.concatenate((gray[0], gray[-1], gray[:, 0], gray[:, -1]))
    light = float(np.median(border)) > SCALE / 2
    levels = blocks.max(axis=(1, 3)) if light else blocks.min(axis=(1, 3))
    if float(levels.max() - levels.min()) < EVEN_LIGHT:
        return gray  # even paper, and no block all ink: nothing to fit
    paper = _paper_fit(levels, light)
    if float(paper.max() - paper.min()) < EVEN_LIGHT:
        return gray
    level = pixels(
        Image.fromarray(paper.astype(np.float32), "F").resize(
            (width, height), Image.Resampling.BILINEAR
        ),
        np.float32,
    )
    if light:  # light falls on paper and ink alike: divide it out
        top = float(paper.max())
        return np.clip(gray * (top / np.maximum(level, 1.0)), 0, SCALE)
    return np.clip(gray - (level - float(paper.min())), 0.0, SCALE)


def normalize_polarity(grays: np.ndarray) -> np.ndarray:
    """White ink on a zero background, stretched so each image's ink peaks at 255.

    `grays` is (N, H, W); the background is the median of each image's border,
    and ink is how far a pixel is from it, towards the ink's side.
    """
    border = np.concatenate(
        (grays[:, 0], grays[:, -1], grays[:, :, 0], grays[:, :, -1]), axis=1
    )
    middle = border.shape[1] // 2  # the median, without np.median's extra passes
    background = np.partition(border, middle, axis=1)[:, middle]
    ink = grays - background[:, None, None]
    ink[background > SCALE / 2] *= -1  # dark ink on a light background
    peak = ink.reshape(len(ink), -1).max(axis=1)
    blank = np.flatnonzero(peak < MIN_CONTRAST)
    if blank.size:
        raise BlankImageError(int(blank[0]))
    np.maximum(ink, 0.0, out=ink)
    ink *= (SCALE / peak.astype(np.float64)).astype(np.float32)[:, None, None]
    return ink


def _bounds(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last index along axis 1 where each row of `mask` is set."""
    first = mask.argmax(axis=1)
    end = mask.shape[1] - mask[:, ::-1].argmax(axis=1)
    return first, end


def scale_to_box(digit: np.ndarray, box: int = DIGIT_BOX) -> np.ndarray:
    """Scale so the longer side is `box` pixels, keeping the aspect ratio.

    Pillow's antialiased bilinear filter on the float image: when shrinking,
    every input pixel contributes.
    """
    height, width = digit.shape
    factor = box / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    scaled = Image.fromarray(digit).resize(size, Image.Resampling.BILINEAR)
    return pixels(scaled, np.float32)


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


def image_features(
    field: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, ...]
) -> tuple[float, float, float, float]:
    """IMAGE_FEATURES of one image: its 28x28 field (0-255), ink box and size.

    Stroke width: a stroke of width w and length L covers about w * L pixels
    and has a boundary about 2 * L long, so w ~ 2 * area / boundary, the
    boundary being the count of stroke/background pixel edges (no skeleton
    needed). The count overestimates diagonal boundaries, which biases w the
    same way for the reference and for serving, so drift scores are unaffected.
    Scalars in plain Python and whole-array counts: it runs on every prediction.
    """
    stroke = field >= STROKE_INK * SCALE
    area = np.count_nonzero(stroke)
    boundary = np.count_nonzero(stroke[:, 1:] != stroke[:, :-1]) + np.count_nonzero(
        stroke[1:] != stroke[:-1]
    )
    top, bottom, left, right = box
    height, width = shape
    return (
        area / (CANVAS * CANVAS),
        2.0 * area / max(boundary, 1),
        math.log2(DIGIT_BOX / max(bottom - top, right - left)),
        math.hypot(top + bottom - height, left + right - width)
        / (2.0 * math.hypot(height, width)),
    )


def grays_to_mnist(grays: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
    """(N, H, W) float32 0-255 gray images to (N, 28, 28) float32 in [0, 1].

    Background, polarity, contrast and the ink's bounding box are found for all
    images at once; only the resize and the centring, which depend on each
    crop, run per image. BlankImageError names the first image without ink.
    When given, `features` (N, 4) receives IMAGE_FEATURES of each image: the
    stroke's ink fraction and width in the 28x28 input, log2 of the factor the
    ink's bounding box was scaled by, and how far the box's centre was from the
    image's centre (a share of the image's diagonal) before centring.
    """
    ink = normalize_polarity(grays)
    mask = ink > INK_FRACTION * SCALE
    top, bottom = _bounds(mask.any(axis=2))
    left, right = _bounds(mask.any(axis=1))
    fields = np.empty((len(grays), CANVAS, CANVAS), dtype=np.float32)
    boxes = zip(*(edge.tolist() for edge in (top, bottom, left, right)), strict=True)
    for index, box in enumerate(boxes):
        t, b, le, r = box
        fields[index] = center_by_mass(scale_to_box(ink[index, t:b, le:r]))
        if features is not None:
            features[index] = image_features(fields[index], box, grays.shape[1:])
    fields *= 1.0 / SCALE
    # Resampling can overshoot 255 by a rounding error; the model expects [0, 1].
    return np.clip(fields, 0.0, 1.0, out=fields)


def gray_to_mnist(gray: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
    """One (H, W) float32 0-255 gray image to a (28, 28) float32 array in [0, 1].

    `features`, when given, is (1, 4): see grays_to_mnist. The paper's light is
    evened out first (`even_light`).
    """
    return grays_to_mnist(even_light(gray)[None], features)[0]


def batch_to_mnist(
    grays: list[np.ndarray], features: np.ndarray | None = None
) -> np.ndarray:
    """Gray images of any sizes to (N, 28, 28): small ones of one size stacked.

    Stacking is where vectorising pays; images above STACK_PIXELS go one at a
    time, so a batch never holds a batch-sized array of large images.
    """
    fields = np.empty((len(grays), CANVAS, CANVAS), dtype=np.float32)
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, gray in enumerate(grays):
        key = gray.shape if gray.size <= STACK_PIXELS else (index, -1)
        groups.setdefault(key, []).append(index)
    for indices in groups.values():
        found = None if features is None else features[indices]  # a copy
        try:
            stack = np.stack([even_light(grays[i]) for i in indices])
            fields[indices] = grays_to_mnist(stack, found)
        except BlankImageError as exc:
            raise BlankImageError(indices[exc.index]) from exc
        if features is not None:
            features[indices] = found
    return fields


def image_to_mnist(
    image: Image.Image, features: np.ndarray | None = None
) -> np.ndarray:
    """Turn an opened image into a (28, 28) float32 array in [0, 1]."""
    return gray_to_mnist(to_grayscale(image), features)


def preprocess(data: bytes, max_pixels: int) -> np.ndarray:
    """PNG or JPEG bytes to a (28, 28) float32 MNIST-like array in [0, 1]."""
    return image_to_mnist(open_image(data, max_pixels))
