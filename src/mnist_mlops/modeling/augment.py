"""Random affine distortions of training batches (rotation, zoom, shift)."""

from __future__ import annotations

import keras

from mnist_mlops.params import AugmentationParams

DEGREES_PER_TURN = 360.0


def build_augmenter(cfg: AugmentationParams, seed: int) -> keras.Sequential:
    """Keras preprocessing layers applied to training batches only."""
    return keras.Sequential(
        [
            keras.layers.RandomRotation(
                cfg.rotation_degrees / DEGREES_PER_TURN, fill_mode="constant", seed=seed
            ),
            keras.layers.RandomZoom(cfg.zoom, fill_mode="constant", seed=seed + 1),
            keras.layers.RandomTranslation(
                cfg.translation, cfg.translation, fill_mode="constant", seed=seed + 2
            ),
        ],
        name="augmenter",
    )
