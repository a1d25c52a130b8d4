"""Streams of digit images for drift tests: MNIST-like, and shifted ones.

Shared by the drift tests and the end-to-end Prometheus test. Shifts are the
two the monitoring must notice: thicker strokes (another pen, a new scanner's
threshold) and noisy rotated scans.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def thick(images: np.ndarray, radius: int = 1) -> np.ndarray:
    """uint8 (N, 28, 28) digits with strokes grown by `radius` pixels (max filter)."""
    out = images.copy()
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            out = np.maximum(out, np.roll(np.roll(images, dy, axis=1), dx, axis=2))
    return out


def noisy_rotated(images: np.ndarray, seed: int = 0) -> np.ndarray:
    """uint8 (N, 28, 28) digits rotated by 15-30 degrees with speckle noise, as a
    poor scan of a tilted form would look."""
    rng = np.random.default_rng(seed)
    out = np.empty_like(images)
    for index, image in enumerate(images):
        angle = float(rng.uniform(15, 30) * rng.choice((-1, 1)))
        rotated = Image.fromarray(image).rotate(angle, Image.Resampling.BILINEAR)
        noise = rng.integers(0, 90, image.shape) * (rng.random(image.shape) < 0.15)
        out[index] = np.clip(np.asarray(rotated, np.int32) + noise, 0, 255)
    return out
