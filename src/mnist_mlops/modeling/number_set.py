"""Compose whole handwritten numbers from single MNIST digits, deterministically.

Each number has 2 to 12 digits taken from the given images, each digit scaled,
placed on a slanted, jittered baseline and spaced by a random gap; about a
quarter of the numbers have one pair pushed together until their ink touches
or overlaps. The result is white ink on black, as MNIST, in uint8.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

MIN_DIGITS, MAX_DIGITS = 2, 12
SCALES = (0.8, 1.25)  # each digit's size relative to MNIST's
GAPS = (2, 9)  # pixels of space between two digits' ink (at MNIST's scale)
OVERLAP = (2, 6)  # pixels two touching digits' ink boxes overlap
SLOPE = 0.08  # the baseline rises or falls up to this many pixels per pixel
JITTER = 2  # pixels each digit moves up or down off the baseline
MARGIN = 4
TOUCHING_SHARE = 0.25
INK = 30  # pixel value from which a column counts as ink when spacing digits


@dataclass(frozen=True)
class ComposedNumber:
    """One composed number: image, its digits as a string, and a touching pair."""

    image: np.ndarray  # (H, W) uint8, white on black
    label: str
    touching: bool


def _scaled(digit: np.ndarray, scale: float) -> np.ndarray:
    """The digit cropped to its ink columns and resized by `scale`."""
    columns = np.flatnonzero((digit > INK).any(axis=0))
    crop = digit[:, columns[0] : columns[-1] + 1]
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    return np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR))


def compose_number(
    digits: np.ndarray, touching_at: int | None, rng: np.random.Generator
) -> np.ndarray:
    """Lay (k, 28, 28) uint8 digits side by side; pair `touching_at` touches."""
    return compose_number_owned(digits, touching_at, rng)[0]


def compose_number_owned(
    digits: np.ndarray, touching_at: int | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`compose_number`, and which digit (its index, -1: none) owns each pixel.

    Where two digits' ink overlaps, the pixel belongs to the brighter one.
    """
    parts = [_scaled(d, rng.uniform(*SCALES)) for d in digits]
    slope = rng.uniform(-SLOPE, SLOPE)
    lefts, x = [], MARGIN
    for index, part in enumerate(parts):
        lefts.append(x)
        touch = touching_at is not None and index == touching_at
        step = -int(rng.integers(*OVERLAP)) if touch else int(rng.integers(*GAPS))
        x += part.shape[1] + step
    width = max(left + p.shape[1] for left, p in zip(lefts, parts, strict=True))
    tops = [round(slope * left + rng.integers(-JITTER, JITTER + 1)) for left in lefts]
    shift = MARGIN - min(tops)
    height = max(t + shift + p.shape[0] for t, p in zip(tops, parts, strict=True))
    canvas = np.zeros((height + MARGIN, width + MARGIN), dtype=np.uint8)
    owners = np.full(canvas.shape, -1, dtype=np.int32)
    for index, (left, top, part) in enumerate(zip(lefts, tops, parts, strict=True)):
        rows = slice(top + shift, top + shift + part.shape[0])
        columns = slice(left, left + part.shape[1])
        owners[rows, columns][part > canvas[rows, columns]] = index
        np.maximum(canvas[rows, columns], part, out=canvas[rows, columns])
    return canvas, owners


def compose_numbers(
    images: np.ndarray, labels: np.ndarray, count: int, seed: int
) -> list[ComposedNumber]:
    """`count` numbers of MIN_DIGITS-MAX_DIGITS digits drawn from `images`.

    The same images, count and seed give the same numbers.
    """
    rng = np.random.default_rng(seed)
    numbers = []
    for _ in range(count):
        size = int(rng.integers(MIN_DIGITS, MAX_DIGITS + 1))
        picks = rng.choice(len(images), size=size, replace=len(images) < size)
        touching = rng.random() < TOUCHING_SHARE
        at = int(rng.integers(0, size - 1)) if touching else None
        image = compose_number(images[picks], at, rng)
        label = "".join(str(int(d)) for d in labels[picks])
        numbers.append(ComposedNumber(image, label, touching))
    return numbers


def to_png(number: ComposedNumber) -> bytes:
    """PNG bytes of the number as written on paper: dark ink on white."""
    buffer = io.BytesIO()
    Image.fromarray(255 - number.image).save(buffer, format="PNG")
    return buffer.getvalue()


def _distance(a: str, b: str) -> int:
    """Edit distance: digits read wrong, missed or added."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, start=1):
            previous, row[j] = (
                row[j],
                min(row[j] + 1, row[j - 1] + 1, previous + (x != y)),
            )
    return row[-1]


def number_metrics(
    numbers: list[ComposedNumber], readings: list[str | None]
) -> dict[str, float | int]:
    """Exact rate overall and on touching numbers, and digit accuracy.

    Digit accuracy is one minus the edit distance per true digit, so a digit
    missed or split in two counts as an error; a refused number (None) counts
    all its digits as errors.
    """
    exact = [r == n.label for n, r in zip(numbers, readings, strict=True)]
    touching = [e for n, e in zip(numbers, exact, strict=True) if n.touching]
    digits = sum(len(n.label) for n in numbers)
    errors = sum(
        min(len(n.label), _distance(n.label, r)) if r is not None else len(n.label)
        for n, r in zip(numbers, readings, strict=True)
    )
    return {
        "number_test_exact": float(np.mean(exact)),
        "number_test_touching_exact": float(np.mean(touching)) if touching else 0.0,
        "number_test_digit_accuracy": 1.0 - errors / digits,
        "number_test_samples": len(numbers),
        "number_test_touching_samples": len(touching),
        "number_test_refused": sum(r is None for r in readings),
    }
