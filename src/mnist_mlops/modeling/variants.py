"""Ways of writing a digit that MNIST's writers rarely use, drawn into skeletons.

MNIST was written by American census staff and students: a 1 is one stroke, a
4 is open at the top, a 7 has no bar across. Many writers elsewhere put a flag
on their 1 (and often a base), close the top of their 4 into a triangle, and
cross their 7 (`crossed_seven`). A model that never saw those reads a flagged
1 as a 7 and a closed 4 as a 9, sure of itself. These functions add the
missing strokes to a skeleton, or draw a closed 4 from its three strokes, at
the resolution of `drawn.fine_skeletons`, so that the drawn renderer gives
them pens, slants and scans like every other digit.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from .drawn import MNIST_BOX, UPSAMPLE, loops

# A flag leaves the top of a 1 downwards to the left, at this angle from the
# vertical (degrees) and this long (share of the stem): steeper and shorter
# than a 7's bar, which runs nearly level.
FLAG_ANGLE = (35.0, 60.0)
FLAG_LENGTH = (0.2, 0.35)
BASE_SHARE = 0.5  # of the flagged ones that also get a base
BASE_HALF = (0.15, 0.28)  # half the base's length, share of the stem
TRIES = 4  # strokes tried before a digit whose every try closes a loop is left plain
# A closed 4, in its box (0-1, y down): the stem's place across the box, the
# bar's height, the left corner's and the bar's right end's place.
STEM_X = (0.55, 0.72)
BAR_Y = (0.55, 0.72)
CORNER_X = (0.0, 0.08)
BAR_BEYOND = (0.12, 0.3)  # how far the bar runs on past the stem, at most to 1
FOUR_WIDTH = (0.7, 0.95)  # box width, share of its height
JITTER = 0.03  # of the box, on every end point
# A European 7's bar crosses its stem at this height (share of the ink's
# height, from its top), this long each side of the stem (share of the
# height), and tilted up or down by at most TILT of the height at each end.
CROSS_AT = (0.45, 0.6)
CROSS_HALF = (0.15, 0.25)
TILT = 0.04
ONE, FOUR, SEVEN = 1, 4, 7


def _lines(skeleton: np.ndarray, segments: list[tuple[float, ...]]) -> np.ndarray:
    """The skeleton with 1-px lines (x0, y0, x1, y1) drawn into it."""
    image = Image.fromarray(skeleton.astype(np.uint8) * 255)
    pen = ImageDraw.Draw(image)
    for segment in segments:
        pen.line(segment, fill=255, width=1)
    return np.asarray(image) > 0


def _end(skeleton: np.ndarray, top: bool) -> np.ndarray:
    """(x, y) of the skeleton's top (or bottom) end: the mean of its extreme rows."""
    rows, cols = np.nonzero(skeleton)
    edge = rows <= rows.min() + 1 if top else rows >= rows.max() - 1
    return np.array([cols[edge].mean(), rows[edge].mean()])


def flagged_one(skeleton: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 1's skeleton with a flag at its top, and a base at its foot half the time.

    A 1 that already hooks at the top can meet its flag and close a loop, which
    no writer means; another flag is drawn then, and after TRIES the 1 is
    left as it was.
    """
    top, foot = _end(skeleton, top=True), _end(skeleton, top=False)
    length = float(np.hypot(*(foot - top))) or 1.0
    holes = loops(skeleton)
    for _ in range(TRIES):
        angle = np.deg2rad(rng.uniform(*FLAG_ANGLE))
        flag = top + np.array([-np.sin(angle), np.cos(angle)]) * (
            length * rng.uniform(*FLAG_LENGTH)
        )
        segments = [(*top, *flag)]
        if rng.random() < BASE_SHARE:  # a level line across the foot
            half = length * rng.uniform(*BASE_HALF)
            segments.append((foot[0] - half, foot[1], foot[0] + half, foot[1]))
        flagged = _lines(skeleton, segments)
        if loops(flagged) == holes:
            return flagged
    return skeleton.copy()


def crossed_seven(skeleton: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 7's skeleton with a short bar across its stem, as much of Europe writes it.

    Where a bar would touch the 7's top stroke and close a loop (a 7 whose stem
    curls back), another is drawn; after TRIES the 7 is left plain.
    """
    rows, cols = np.nonzero(skeleton)
    top, height = rows.min(), max(int(np.ptp(rows)), 1)
    holes = loops(skeleton)
    for _ in range(TRIES):
        y = round(top + height * rng.uniform(*CROSS_AT))
        stem = cols[rows == y]
        if not len(stem):
            continue
        x, half = float(stem.mean()), height * rng.uniform(*CROSS_HALF)
        tilt = height * rng.uniform(-TILT, TILT)
        crossed = _lines(skeleton, [(x - half, y + tilt, x + half, y - tilt)])
        if loops(crossed) == holes:
            return crossed
    return skeleton.copy()


def closed_four(rng: np.random.Generator, size: int = 28 * UPSAMPLE) -> np.ndarray:
    """The skeleton of a 4 whose top is closed: stem, diagonal and a crossing bar."""
    height = MNIST_BOX * UPSAMPLE
    width = height * rng.uniform(*FOUR_WIDTH)
    left, top = (size - width) / 2, (size - height) / 2

    def point(x: float, y: float) -> tuple[float, float]:
        jx, jy = rng.uniform(-JITTER, JITTER, 2)
        return left + (x + jx) * width, top + (y + jy) * height

    stem_x, bar_y = rng.uniform(*STEM_X), rng.uniform(*BAR_Y)
    stem_top, stem_foot = point(stem_x, 0.0), point(stem_x, 1.0)
    corner = point(rng.uniform(*CORNER_X), bar_y)
    bar_end = point(min(1.0, stem_x + rng.uniform(*BAR_BEYOND)), bar_y)
    blank = np.zeros((size, size), dtype=bool)
    return _lines(
        blank,
        [(*stem_top, *stem_foot), (*stem_top, *corner), (*corner, *bar_end)],
    )


class Shares(NamedTuple):
    """Of each digit's drawn skeletons, the share that `vary` varies."""

    flagged_ones: float = 0.0  # given a flag (`flagged_one`)
    closed_fours: float = 0.0  # replaced by a closed 4 (`closed_four`)
    crossed_sevens: float = 0.0  # given a bar across (`crossed_seven`)


def vary(
    skeletons: np.ndarray,
    labels: np.ndarray,
    shares: Shares,
    rng: np.random.Generator,
) -> np.ndarray:
    """A copy of the (N, H, W) skeletons with `shares` of the 1s, 4s and 7s varied.

    Labels do not change. At a `crossed_sevens` of 0 no 7 draws from `rng`, so
    the other digits come out as they did before 7s could be crossed.
    """
    out = skeletons.copy()
    for i, digit in enumerate(labels.tolist()):
        if digit == ONE and rng.random() < shares.flagged_ones:
            out[i] = flagged_one(out[i], rng)
        elif digit == FOUR and rng.random() < shares.closed_fours:
            out[i] = closed_four(rng, out.shape[1])
        elif (
            digit == SEVEN
            and shares.crossed_sevens
            and rng.random() < shares.crossed_sevens
        ):
            out[i] = crossed_seven(out[i], rng)
    return out
