"""Compose whole handwritten numbers from single MNIST digits, deterministically.

Each number has 2 to 12 digits taken from the given images, each digit scaled,
placed on a slanted, jittered baseline and spaced by a random gap; about a
quarter of the numbers have one pair pushed together until their ink touches
or overlaps. The result is white ink on black, as MNIST, in uint8.

`compose_drawn_numbers` writes the same kind of numbers with the drawn-digit
rendering (`mnist_mlops.modeling.drawn`): one writer's pen, slant and rotation
per number, then blur, polarity, paper noise and JPEG, as an upload.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from mnist_mlops.modeling.drawn import (
    MNIST_BOX,
    Style,
    draw_skeleton,
    fine_skeletons,
    finish,
    random_style,
)

MIN_DIGITS, MAX_DIGITS = 2, 12
SCALES = (0.8, 1.25)  # each digit's size relative to MNIST's
GAPS = (2, 9)  # pixels of space between two digits' ink (at MNIST's scale)
OVERLAP = (2, 6)  # pixels two touching digits' ink boxes overlap
SLOPE = 0.08  # the baseline rises or falls up to this many pixels per pixel
JITTER = 2  # pixels each digit moves up or down off the baseline
MARGIN = 4
TOUCHING_SHARE = 0.25
INK = 30  # pixel value from which a column counts as ink when spacing digits
DRAWN_REDUCTION = 7  # a drawn digit is drawn this many times MNIST's size
DRAWN_SCALE = 4  # a drawn number is finished at this many times MNIST's scale
REVIEW_BANDS = ("auto_approved", "secondary_verification", "manual_review")


@dataclass(frozen=True)
class ComposedNumber:
    """One composed number: image, its digits as a string, and a touching pair."""

    image: np.ndarray  # (H, W) uint8, white on black
    label: str
    touching: bool
    picks: tuple[int, ...] = ()  # each digit's index in the images it came from


def _scaled(digit: np.ndarray, scale: float) -> np.ndarray:
    """The digit cropped to its ink (rows and columns) and resized by `scale`.

    Cropped to its ink, a digit is placed by its ink: digits of different sizes
    share a centre line, as written ones do, instead of the smaller ones riding
    high in an empty box.
    """
    ink = digit > INK
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = digit[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    return np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR))


def compose_number(
    digits: np.ndarray, touching_at: int | None, rng: np.random.Generator
) -> np.ndarray:
    """Lay (k, H, W) uint8 digits (MNIST's 20-px box in H) side by side; pair
    `touching_at` touches.
    """
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
    # Each digit's ink is centred on the slanted, jittered line.
    tops = [
        round(slope * left + rng.integers(-JITTER, JITTER + 1) - part.shape[0] / 2)
        for left, part in zip(lefts, parts, strict=True)
    ]
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


def _plan(rng: np.random.Generator, pool: int) -> tuple[np.ndarray, int | None]:
    """One number's digits (indices into `pool` images) and its touching pair
    (the index of the pair's left digit; None: no pair touches).
    """
    size = int(rng.integers(MIN_DIGITS, MAX_DIGITS + 1))
    picks = rng.choice(pool, size=size, replace=pool < size)
    touching = rng.random() < TOUCHING_SHARE
    return picks, int(rng.integers(0, size - 1)) if touching else None


def compose_numbers(
    images: np.ndarray, labels: np.ndarray, count: int, seed: int
) -> list[ComposedNumber]:
    """`count` numbers of MIN_DIGITS-MAX_DIGITS digits drawn from `images`.

    The same images, count and seed give the same numbers.
    """
    rng = np.random.default_rng(seed)
    numbers = []
    for _ in range(count):
        picks, at = _plan(rng, len(images))
        image = compose_number(images[picks], at, rng)
        label = "".join(str(int(d)) for d in labels[picks])
        numbers.append(ComposedNumber(image, label, at is not None, tuple(picks)))
    return numbers


def drawn_digits(
    images: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, Style]:
    """(k, 40, 40) uint8 digits, each redrawn from its skeleton by one writer,
    and the writer's style (for `finish`).

    The writer's pen, pressure, slant and rotation come from one `random_style`.
    Each digit is drawn centred, DRAWN_REDUCTION times MNIST's 20-px box with
    the pen scaled alike (small enough that no digit must shrink to fit the
    canvas), then box-reduced: digits of one number keep one size, as one
    writer's do, and `compose_number` lays them out as MNIST's own.
    """
    writer = random_style(rng)
    height = MNIST_BOX * DRAWN_REDUCTION
    style = replace(
        writer,
        height=height,
        width=writer.width * height / writer.height,
        position=(0.5, 0.5),
    )
    skeletons = fine_skeletons(images.astype(np.float32) / 255.0)
    drawn = [draw_skeleton(s, style).reduce(DRAWN_REDUCTION) for s in skeletons]
    return np.stack([np.asarray(d, dtype=np.uint8) for d in drawn]), writer


def compose_drawn_numbers(
    images: np.ndarray, labels: np.ndarray, count: int, seed: int
) -> list[tuple[ComposedNumber, bytes]]:
    """`compose_numbers`, each written by one drawn-digit writer: the number and
    the PNG or JPEG bytes a client would upload (either polarity, blurred, and
    for scans, paper noise and JPEG). The same images, count and seed give the
    same numbers.
    """
    rng = np.random.default_rng(seed)
    numbers = []
    for _ in range(count):
        picks, at = _plan(rng, len(images))
        digits, writer = drawn_digits(images[picks], rng)
        image = compose_number(digits, at, rng)
        label = "".join(str(int(d)) for d in labels[picks])
        large = Image.fromarray(image).resize(
            (image.shape[1] * DRAWN_SCALE, image.shape[0] * DRAWN_SCALE),
            Image.Resampling.BILINEAR,
        )
        number = ComposedNumber(image, label, at is not None, tuple(picks))
        numbers.append((number, finish(large, writer, rng)))
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
    numbers: list[ComposedNumber],
    readings: list[str | None],
    prefix: str = "number_test",
    alone: np.ndarray | None = None,
    bands: list[str | None] | None = None,
) -> dict[str, Any]:
    """Exact rate overall and on touching numbers, and digit accuracy, named
    `<prefix>_exact` and so on.

    Digit accuracy is one minus the edit distance per true digit, so a digit
    missed or split in two counts as an error; a refused number (None) counts
    all its digits as errors. With `alone` (whether the model reads each source
    image right on its own), `<prefix>_exact_bound` is the share of numbers
    whose every digit it reads right alone: what a perfect split would read,
    so the gap to `<prefix>_exact` is the segmentation's. With `bands` (the
    review band serving routed each reading to, None if refused),
    `<prefix>_review_bands` gives each band's share of the numbers and the
    share of those read wrong.
    """
    exact = [r == n.label for n, r in zip(numbers, readings, strict=True)]
    touching = [e for n, e in zip(numbers, exact, strict=True) if n.touching]
    digits = sum(len(n.label) for n in numbers)
    errors = sum(
        min(len(n.label), _distance(n.label, r)) if r is not None else len(n.label)
        for n, r in zip(numbers, readings, strict=True)
    )
    metrics: dict[str, Any] = {
        f"{prefix}_exact": float(np.mean(exact)),
        f"{prefix}_touching_exact": float(np.mean(touching)) if touching else 0.0,
        f"{prefix}_digit_accuracy": 1.0 - errors / digits,
        f"{prefix}_samples": len(numbers),
        f"{prefix}_touching_samples": len(touching),
        f"{prefix}_refused": sum(r is None for r in readings),
    }
    if alone is not None:
        whole = [bool(alone[list(n.picks)].all()) for n in numbers]
        touching_whole = [w for n, w in zip(numbers, whole, strict=True) if n.touching]
        metrics[f"{prefix}_exact_bound"] = float(np.mean(whole))
        metrics[f"{prefix}_touching_exact_bound"] = (
            float(np.mean(touching_whole)) if touching_whole else 0.0
        )
    if bands is not None:
        metrics[f"{prefix}_review_bands"] = _band_figures(exact, bands)
    return metrics


def _band_figures(exact: list[bool], bands: list[str | None]) -> dict[str, Any]:
    """Each review band's share of the numbers, and the numbers in it read wrong."""
    figures = {}
    for band in REVIEW_BANDS:
        hits = [ok for ok, b in zip(exact, bands, strict=True) if b == band]
        figures[band] = {
            "share": len(hits) / len(exact),
            "count": len(hits),
            "errors": hits.count(False),
            "error_rate": hits.count(False) / len(hits) if hits else 0.0,
        }
    return figures
