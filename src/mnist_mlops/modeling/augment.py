"""Random distortions of training batches that model how people write and scan.

One pass per batch, all TensorFlow ops (no Python per image): stroke width
(a blend towards a dilated or eroded digit), then a single resampling through
a warp that combines rotation, shear (slant), scale per axis, translation and a
smooth elastic displacement field. Randomness comes from the batch's own seed
(stateless ops), so the batches are the same for a seed whatever the
parallelism of the input pipeline. Each digit's ink is finally stretched to peak
at 1, as serving's preprocessing does.
"""

from __future__ import annotations

import math

import tensorflow as tf

from mnist_mlops.params import AugmentationParams

SIDE = 28
DIGIT_BOX = 20.0  # serving scales the ink's longer side to this many pixels
INK_SHARE = 0.1  # serving crops to the pixels above this share of the peak
MIN_PEAK = 0.1  # a digit fainter than this after erosion is left as it is


def _stream(seed: tf.Tensor, k: int) -> tf.Tensor:
    """Seed of the batch's `k`-th independent random stream."""
    return seed + tf.constant([0, k], seed.dtype)


def _uniform(seed: tf.Tensor, k: int, shape: tf.Tensor, bound: float) -> tf.Tensor:
    """Stateless uniform in [-bound, bound], stream `k` of the batch seed."""
    return tf.random.stateless_uniform(shape, _stream(seed, k), -bound, bound)


def stroke_width(x: tf.Tensor, amount: tf.Tensor) -> tf.Tensor:
    """Thicken (amount > 0) or thin (< 0) strokes: a blend towards a 3x3 dilation
    (twice for amount > 1) or erosion; amount per image, shape (B, 1, 1, 1)."""
    dilated = tf.nn.max_pool2d(x, 3, 1, "SAME")
    twice = tf.nn.max_pool2d(dilated, 3, 1, "SAME")
    eroded = -tf.nn.max_pool2d(-x, 3, 1, "SAME")
    grow = tf.clip_by_value(amount, 0.0, 1.0)
    more = tf.clip_by_value(amount - 1.0, 0.0, 1.0)
    shrink = tf.clip_by_value(-amount, 0.0, 1.0)
    thick = x + grow * (dilated - x) + more * (twice - dilated)
    return thick + shrink * (eroded - x)


def _bilinear(x: tf.Tensor, rows: tf.Tensor, cols: tf.Tensor) -> tf.Tensor:
    """Sample (B, 28, 28, 1) images at fractional (B, 28, 28) positions; 0 outside."""
    padded = tf.pad(x[..., 0], [[0, 0], [1, 1], [1, 1]])
    rows = tf.clip_by_value(rows + 1.0, 0.0, SIDE + 1.0)
    cols = tf.clip_by_value(cols + 1.0, 0.0, SIDE + 1.0)
    r0, c0 = tf.floor(rows), tf.floor(cols)
    fr, fc = rows - r0, cols - c0
    r0 = tf.clip_by_value(tf.cast(r0, tf.int32), 0, SIDE)
    c0 = tf.clip_by_value(tf.cast(c0, tf.int32), 0, SIDE)
    flat = tf.reshape(padded, [tf.shape(x)[0], -1])
    width = SIDE + 2

    def at(r: tf.Tensor, c: tf.Tensor) -> tf.Tensor:
        return tf.gather(flat, r * width + c, batch_dims=1)

    top = at(r0, c0) * (1 - fc) + at(r0, c0 + 1) * fc
    bottom = at(r0 + 1, c0) * (1 - fc) + at(r0 + 1, c0 + 1) * fc
    return (top * (1 - fr) + bottom * fr)[..., None]


def warp(x: tf.Tensor, cfg: AugmentationParams, seed: tf.Tensor) -> tf.Tensor:
    """Rotation, shear, per-axis scale, translation and elastic field, in one pass."""
    batch = tf.shape(x)[0]
    one = tf.stack([batch, 1, 1])
    angle = _uniform(seed, 1, one, math.radians(cfg.rotation_degrees))
    shear = _uniform(seed, 2, one, cfg.shear)
    scale = 1.0 + _uniform(seed, 3, tf.stack([batch, 2, 1, 1]), cfg.zoom)
    shift = _uniform(seed, 4, tf.stack([batch, 2, 1, 1]), cfg.translation * SIDE)
    coarse = tf.random.stateless_normal(
        tf.stack([batch, cfg.elastic_grid, cfg.elastic_grid, 2]), _stream(seed, 5)
    )
    field = tf.image.resize(coarse, [SIDE, SIDE], "bicubic") * cfg.elastic_pixels
    centre = (SIDE - 1) / 2
    grid = tf.range(SIDE, dtype=tf.float32) - centre
    y, x_ = grid[None, :, None], grid[None, None, :]
    # Output pixel -> source pixel: the inverse of scale, then shear, then rotate.
    cos, sin = tf.cos(angle), tf.sin(angle)
    yr, xr = cos * y + sin * x_, -sin * y + cos * x_
    xs = xr + shear * yr
    rows = yr / scale[:, 0] + centre - shift[:, 0] + field[..., 0]
    cols = xs / scale[:, 1] + centre - shift[:, 1] + field[..., 1]
    return _bilinear(x, rows, cols)


def _extent(any_ink: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """First and last index holding ink along one axis, (B,) each (all if none)."""
    size = tf.shape(any_ink)[1]
    flags = tf.cast(any_ink, tf.int32)
    first = tf.argmax(flags, axis=1, output_type=tf.int32)
    last = size - 1 - tf.argmax(tf.reverse(flags, [1]), axis=1, output_type=tf.int32)
    found = tf.reduce_any(any_ink, axis=1)
    return tf.where(found, first, 0), tf.where(found, last, size - 1)


def recentre(x: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
    """Serving's normalisation, batched: crop to the ink, longer side to 20 px,
    centre of mass in the middle, then moved by `shift` (B, 2) pixels.

    A distorted digit is thus seen at the size and place serving would give it
    (bilinear, where serving filters with a triangle: a close approximation).
    """
    img = x[..., 0]
    peak = tf.reduce_max(img, axis=[1, 2], keepdims=True)
    mask = img > INK_SHARE * peak
    top, bottom = _extent(tf.reduce_any(mask, axis=2))
    left, right = _extent(tf.reduce_any(mask, axis=1))
    top, left = tf.cast(top, tf.float32), tf.cast(left, tf.float32)
    height = tf.cast(bottom, tf.float32) - top + 1
    width = tf.cast(right, tf.float32) - left + 1
    scale = DIGIT_BOX / tf.maximum(height, width)
    pos = tf.range(SIDE, dtype=tf.float32)
    total = tf.maximum(tf.reduce_sum(img, axis=[1, 2]), 1e-6)
    mass = [tf.reduce_sum(tf.reduce_sum(img, a) * pos, 1) / total for a in (2, 1)]
    place, inside = [], []
    for start, size, centre, k in (
        (top, height, mass[0], 0),
        (left, width, mass[1], 1),
    ):
        scaled = tf.maximum(1.0, tf.round(size * scale))
        origin = tf.round(SIDE / 2 - ((centre - start + 0.5) * scale - 0.5))
        origin = tf.clip_by_value(origin, 0.0, SIDE - scaled) + shift[:, k]
        place.append(origin)
        # As in serving, nothing outside the scaled crop: faint ink stays out.
        low, high = origin[:, None] - 0.5, origin[:, None] + scaled[:, None] - 0.5
        inside.append((pos >= low) & (pos < high))
    s = scale[:, None, None]
    rows = top[:, None, None] + (pos[None, :, None] - place[0][:, None, None] + 0.5) / s
    cols = (
        left[:, None, None] + (pos[None, None, :] - place[1][:, None, None] + 0.5) / s
    )
    shape = tf.shape(img)
    sampled = _bilinear(
        x, tf.broadcast_to(rows - 0.5, shape), tf.broadcast_to(cols - 0.5, shape)
    )
    box = inside[0][:, :, None] & inside[1][:, None, :]
    return tf.where(box[..., None], sampled, 0.0)


def restroke(skeleton: tf.Tensor, amount: tf.Tensor) -> tf.Tensor:
    """A skeleton redrawn with a uniform pen: 0-2 dilations, then antialiased."""
    pen = stroke_width(skeleton, amount)
    taps = tf.constant([1.0, 2.0, 1.0]) / 4.0
    kernel = tf.reshape(taps[:, None] * taps[None, :], [3, 3, 1, 1])
    return tf.nn.conv2d(pen, kernel, 1, "SAME")


def augment(
    x: tf.Tensor,
    cfg: AugmentationParams,
    seed: tf.Tensor,
    skeleton: tf.Tensor | None = None,
) -> tf.Tensor:
    """A training batch (B, 28, 28, 1) in [0, 1], distorted; `seed` is int (2,).

    With `skeleton` (the batch's 1-px skeletons), a share `cfg.restroke` of the
    digits is first redrawn from its skeleton with a uniform pen, as a person
    with a stylus or a felt pen draws it.
    """
    one = tf.stack([tf.shape(x)[0], 1, 1, 1])
    amount = tf.random.stateless_uniform(
        one, _stream(seed, 6), -cfg.stroke_thin, cfg.stroke_thicken
    )
    x = stroke_width(x, amount)
    if skeleton is not None:
        width = tf.random.stateless_uniform(one, _stream(seed, 7), 0.0, 2.0)
        chosen = tf.random.stateless_uniform(one, _stream(seed, 8)) < cfg.restroke
        x = tf.where(chosen, restroke(skeleton, width), x)
    warped = tf.clip_by_value(warp(x, cfg, seed), 0.0, 1.0)
    if cfg.recentre:
        shift = _uniform(seed, 9, tf.stack([tf.shape(x)[0], 2]), cfg.recentre_shift)
        warped = tf.clip_by_value(recentre(warped, shift), 0.0, 1.0)
    # Serving stretches every digit's ink to peak at 1; an eroded digit too.
    peak = tf.reduce_max(warped, axis=[1, 2, 3], keepdims=True)
    return warped / tf.maximum(peak, MIN_PEAK)
