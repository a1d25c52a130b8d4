"""Numbers laid out from single MNIST test digits, for the number-reading tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

INK = 30  # pixel value from which a column counts as the digit's ink


@dataclass(frozen=True)
class Number:
    """A composed number: white-on-black pixels and where each digit starts."""

    image: np.ndarray
    lefts: list[int]  # first ink column of each digit


def ink_columns(digit: np.ndarray) -> np.ndarray:
    """The digit cropped to its columns of ink."""
    columns = np.flatnonzero((digit > INK).any(axis=0))
    return digit[:, columns[0] : columns[-1] + 1]


def first_of(sample: dict[str, np.ndarray], digits: str, skip: int = 0) -> np.ndarray:
    """The (skip+1)-th sample image of each digit of `digits`."""
    labels = sample["labels"]
    return np.stack(
        [sample["images"][np.flatnonzero(labels == int(d))[skip]] for d in digits]
    )


def compose(
    digits: np.ndarray,
    *,
    gap: int = 6,
    touching_at: int | None = None,
    scales: list[float] | None = None,
    slope: float = 0.0,
) -> Number:
    """Digits side by side `gap` px apart; pair `touching_at` overlaps by 3 px."""
    parts = []
    for index, digit in enumerate(digits):
        part = ink_columns(digit)
        if scales:
            size = (round(part.shape[1] * scales[index]), round(28 * scales[index]))
            part = np.asarray(Image.fromarray(part).resize(size, Image.BILINEAR))
        parts.append(part)
    lefts, x = [], 8
    for index, part in enumerate(parts):
        lefts.append(x)
        x += part.shape[1] + (-3 if index == touching_at else gap)
    tops = [round(slope * left) for left in lefts]
    shift = 8 - min(tops)
    height = max(t + shift + p.shape[0] for t, p in zip(tops, parts, strict=True)) + 8
    canvas = np.zeros((height, x + 8), dtype=np.uint8)
    for left, top, part in zip(lefts, tops, parts, strict=True):
        window = canvas[top + shift : top + shift + part.shape[0]]
        target = window[:, left : left + part.shape[1]]
        np.maximum(target, part, out=target)
    return Number(canvas, lefts)
