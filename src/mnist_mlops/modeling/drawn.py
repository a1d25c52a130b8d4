"""Re-render MNIST digits as a person draws them on a canvas or a scanner captures them.

Each digit is thinned to its skeleton (a loop the writer filled in stays
filled), then redrawn on a 280x280 canvas with a round brush: its own stroke
width, size, position, slant, rotation and polarity, then a little blur, paper
noise and JPEG compression for the scanned ones. The result is PNG or JPEG
bytes, what a client uploads to serving.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy.ndimage import convolve, distance_transform_edt, label, zoom

CANVAS = 280
MNIST_BOX = 20  # MNIST's digits fit a 20x20 box inside 28x28
DARK_INK_SHARE = 0.5  # of the images drawn dark on light (the rest light on dark)
SCANNED_SHARE = 0.5  # of the images scanned from paper (the rest canvas PNGs)
# Ink levels tried, lowest first, when a digit is binarised before thinning: the
# lowest that keeps the most loops wins. At 0.5 alone, a 9 or 6 whose loop is
# nearly filled with ink thinned to a line and was redrawn as a 1 or a 7.
INK_LEVELS = (0.5, 0.65, 0.8)
# Digits are thinned at twice MNIST's resolution: at 28x28, Zhang-Suen erases
# 2-px diagonal strokes and collapses small loops (a thick 2 lost its base, an 8
# became a 9), which would change the digit, not only its style.
UPSAMPLE = 2
# Zhang-Suen deletes a pixel with 2-6 ink neighbours (not an end, not interior).
MIN_NEIGHBOURS, MAX_NEIGHBOURS = 2, 6
# Ink that the skeleton, drawn at the digit's own stroke width, would leave out is
# kept as a filled region when it is larger than this many pen dots (a disk of
# the stroke's half-width): a loop the writer filled in, or a blob. Thinned, a
# filled loop becomes one line, and a 9 or a 6 would be redrawn as a 1.
FILLED_DOTS = 2.0
SMOOTHING_PASSES = 2  # skeleton points averaged with their neighbours, so many times
# Neighbour offsets P2..P9 of Zhang-Suen, clockwise from north.
_NEIGHBOURS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
# Forward half of the 8-neighbourhood: each skeleton edge is drawn once.
_EDGES = ((0, 1), (1, -1), (1, 0), (1, 1))


def _neighbours(padded: np.ndarray) -> list[np.ndarray]:
    """The 8 neighbours P2..P9 of every inner pixel of a padded (N, H+2, W+2) stack."""
    h, w = padded.shape[1] - 2, padded.shape[2] - 2
    return [
        padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in _NEIGHBOURS
    ]


def loops(ink: np.ndarray) -> int:
    """Number of holes of a binary image: background regions off the border."""
    background, count = label(~ink)
    edge = np.concatenate(
        [background[0], background[-1], background[:, 0], background[:, -1]]
    )
    return count - np.count_nonzero(np.unique(edge))


def ink_masks(images: np.ndarray) -> np.ndarray:
    """Binary ink of each (H, W) image, at the lowest level that keeps its loops."""
    masks = np.empty(images.shape, dtype=bool)
    for i, image in enumerate(images):
        candidates = [image > level for level in INK_LEVELS]
        holes = [loops(mask) for mask in candidates]
        masks[i] = candidates[holes.index(max(holes))]
    return masks


def thin(ink: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a stack of binary images (N, H, W) to 1-px skeletons.

    scikit-image (`skeletonize`) is not a dependency of the project and SciPy has
    no thinning, so this is the classic two-subiteration algorithm (Zhang & Suen,
    1984), vectorised over the whole stack.
    """
    image = ink.astype(np.uint8)
    # Digits are independent: each pass works only on those still changing, since
    # a few thick ones need many more passes than the rest.
    active = np.arange(len(image))
    while len(active):
        changed = np.zeros(len(active), dtype=bool)
        part = image[active]  # a copy: thinned in place, then written back
        for first in (True, False):
            p = _neighbours(np.pad(part, ((0, 0), (1, 1), (1, 1))))
            count = sum(p)
            transitions = sum((a == 0) & (b == 1) for a, b in pairwise([*p, p[0]]))
            p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
            if first:
                side = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                side = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            delete = (
                (part == 1)
                & (count >= MIN_NEIGHBOURS)
                & (count <= MAX_NEIGHBOURS)
                & (transitions == 1)
                & side
            )
            part[delete] = 0
            changed |= delete.any(axis=(1, 2))
        image[active] = part
        active = active[changed]
    return image.astype(bool)


@dataclass(frozen=True)
class Style:
    """How one digit is drawn; every field is drawn at random per image."""

    height: float  # digit height on the canvas, pixels
    aspect: float  # width multiplier
    slant: float  # horizontal shear, pixels per pixel of height
    rotation: float  # radians
    position: tuple[float, float]  # (x, y) place in the room left free, 0-1
    width: float  # brush diameter, pixels
    pressure: float  # relative brush width variation along the strokes
    pressure_wave: tuple[float, float, float]  # its direction (x, y per px) and phase
    dark_ink: bool  # dark ink on a light background (else light on dark)
    scanned: bool  # paper background, noise and JPEG, else a clean canvas PNG
    blur: float  # Gaussian blur radius, pixels
    paper: float  # background gray level of a scan (0-255, before polarity)
    ink: float  # ink gray level of a scan
    noise: float  # sensor noise standard deviation, gray levels
    jpeg_quality: int  # JPEG quality of a scan


def random_style(rng: np.random.Generator) -> Style:
    """A drawing style within the ranges people and scanners produce."""
    height = rng.uniform(0.35, 0.8) * CANVAS
    return Style(
        height=height,
        aspect=rng.uniform(0.8, 1.25),
        slant=rng.uniform(-0.35, 0.35),
        rotation=np.deg2rad(rng.uniform(-12, 12)),
        position=(rng.random(), rng.random()),
        width=max(3.0, rng.uniform(0.05, 0.2) * height),
        pressure=rng.uniform(0.0, 0.3),
        pressure_wave=(*rng.uniform(-0.05, 0.05, 2), rng.uniform(0, 2 * np.pi)),
        dark_ink=bool(rng.random() < DARK_INK_SHARE),
        scanned=bool(rng.random() < SCANNED_SHARE),
        blur=rng.uniform(0.0, 1.5),
        paper=rng.uniform(190, 250),
        ink=rng.uniform(0, 80),
        noise=rng.uniform(0, 4),
        jpeg_quality=int(rng.integers(50, 95)),
    )


def _smoothed_grid(skeleton: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates, each skeleton pixel's moved towards its skeleton neighbours.

    Drawn 10x larger, a skeleton's pixel staircase would show as a zigzag; a pen
    moves smoothly, so the points are averaged along the skeleton first.
    """
    grid = np.mgrid[0 : skeleton.shape[0], 0 : skeleton.shape[1]].astype(np.float64)
    mask = skeleton.astype(np.float64)
    kernel = np.ones((3, 3))
    count = np.maximum(convolve(mask, kernel, mode="constant"), 1.0)
    for _ in range(SMOOTHING_PASSES):
        mean = [convolve(g * mask, kernel, mode="constant") / count for g in grid]
        grid = np.where(skeleton, np.stack(mean), grid)
    return grid[0], grid[1]


def _canvas_points(skeleton: np.ndarray, style: Style) -> np.ndarray:
    """(H, W, 2) canvas (x, y) of every MNIST pixel under the style's geometry.

    The digit, brush included, always fits the canvas: it shrinks if it must, and
    sits at `style.position` within the room left around it.
    """
    rows, cols = np.nonzero(skeleton)
    cy, cx = (rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2
    scale = style.height / (MNIST_BOX * UPSAMPLE)
    grid_y, grid_x = _smoothed_grid(skeleton)
    y = (grid_y - cy) * scale
    x = (grid_x - cx) * scale * style.aspect - style.slant * y
    cos, sin = np.cos(style.rotation), np.sin(style.rotation)
    points = np.stack((cos * x - sin * y, sin * x + cos * y), axis=-1)
    ink = points[rows, cols]
    low, high = ink.min(axis=0), ink.max(axis=0)
    margin = style.width  # half the brush, and as much again of paper
    fit = min(1.0, (CANVAS - 2 * margin) / float((high - low).max() or 1.0))
    room = CANVAS - 2 * margin - (high - low) * fit
    origin = margin + room * np.asarray(style.position) - low * fit
    return points * fit + origin


def _brush(style: Style, x: float, y: float) -> float:
    """Brush diameter at (x, y): pressure varies smoothly along the strokes."""
    kx, ky, phase = style.pressure_wave
    return style.width * (1 + style.pressure * np.sin(kx * x + ky * y + phase))


def draw_skeleton(skeleton: np.ndarray, style: Style) -> Image.Image:
    """The skeleton drawn with a round brush: white ink (255) on black, 280x280."""
    points = _canvas_points(skeleton, style)
    image = Image.new("L", (CANVAS, CANVAS), 0)
    pen = ImageDraw.Draw(image)
    height, width = skeleton.shape
    for r, c in zip(*np.nonzero(skeleton), strict=True):
        x0, y0 = points[r, c]
        for dr, dc in _EDGES:
            rr, cc = r + dr, c + dc
            if 0 <= rr < height and 0 <= cc < width and skeleton[rr, cc]:
                x1, y1 = points[rr, cc]
                stroke = _brush(style, (x0 + x1) / 2, (y0 + y1) / 2)
                pen.line((x0, y0, x1, y1), fill=255, width=round(stroke))
                radius = stroke / 2  # round joints and caps
                for x, y in ((x0, y0), (x1, y1)):
                    pen.ellipse((x - radius, y - radius, x + radius, y + radius), 255)
        radius = _brush(style, x0, y0) / 2  # isolated skeleton pixels are dots
        pen.ellipse((x0 - radius, y0 - radius, x0 + radius, y0 + radius), 255)
    return image


def finish(ink: Image.Image, style: Style, rng: np.random.Generator) -> bytes:
    """Blur, colours, paper noise and encoding: the bytes a client would upload."""
    if style.blur > 0:
        ink = ink.filter(ImageFilter.GaussianBlur(style.blur))
    alpha = np.asarray(ink, dtype=np.float32) / 255.0
    paper, pen = (style.paper, style.ink) if style.scanned else (255.0, 0.0)
    gray = paper + (pen - paper) * alpha
    if style.scanned:
        gray += rng.normal(0.0, style.noise, gray.shape)
    if not style.dark_ink:
        gray = 255.0 - gray
    image = Image.fromarray(np.clip(np.rint(gray), 0, 255).astype(np.uint8), "L")
    out = io.BytesIO()
    if style.scanned:
        image.save(out, "JPEG", quality=style.jpeg_quality)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def filled_regions(ink: np.ndarray, skeletons: np.ndarray) -> np.ndarray:
    """Ink of each (H, W) digit that its skeleton cannot redraw: filled loops, blobs.

    The skeleton drawn with a pen of the digit's own stroke width (twice the
    median distance from a skeleton pixel to the paper) covers the strokes; what
    it leaves out in pieces larger than FILLED_DOTS pen dots was a filled area;
    that area is kept whole, with the ink joining it to the skeleton.
    """
    filled = np.zeros(ink.shape, dtype=bool)
    for i, (mask, skeleton) in enumerate(zip(ink, skeletons, strict=True)):
        half = float(np.median(distance_transform_edt(mask)[skeleton]))
        drawn = distance_transform_edt(~skeleton) <= half + 1.0
        pieces, count = label(mask & ~drawn)
        if not count:
            continue
        sizes = np.bincount(pieces.ravel())
        big = np.flatnonzero(sizes > FILLED_DOTS * np.pi * half**2)
        big = big[big > 0]
        if len(big):
            # The piece and the ink between it and the skeleton: one filled area
            # joined to its strokes, not a dot beside them.
            near = distance_transform_edt(~np.isin(pieces, big)) <= half + 2.0
            filled[i] = near & mask
    return filled


def fine_skeletons(images: np.ndarray) -> np.ndarray:
    """1-px skeletons of (N, 28, 28[, 1]) digits in [0, 1], at UPSAMPLE x resolution.

    Filled areas (`filled_regions`) stay filled, so a pen redrawing the
    skeleton draws the same digit.
    """
    fine = zoom(images.reshape(len(images), 28, 28), (1, UPSAMPLE, UPSAMPLE), order=1)
    ink = ink_masks(fine)
    skeletons = thin(ink)
    empty = ~skeletons.any(axis=(1, 2))
    skeletons[empty] = ink[empty]  # (no MNIST digit thins to nothing, but be safe)
    return skeletons | filled_regions(ink, skeletons)


def render_skeletons(skeletons: np.ndarray, seed: int) -> list[bytes]:
    """Each (H, W) skeleton (`fine_skeletons`) drawn in a random style, as bytes."""
    rng = np.random.default_rng(seed)
    out = []
    for skeleton in skeletons:
        style = random_style(rng)
        out.append(finish(draw_skeleton(skeleton, style), style, rng))
    return out


def render(images: np.ndarray, seed: int) -> list[bytes]:
    """Each (28, 28[, 1]) image in [0, 1] as drawn-digit bytes; the same for a seed."""
    return render_skeletons(fine_skeletons(images), seed)
