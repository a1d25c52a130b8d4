"""The CNN, built from parameters (the seed architecture by default)."""

from __future__ import annotations

import keras

from mnist_mlops.params import ModelParams

INPUT_SHAPE = (28, 28, 1)
N_CLASSES = 10


def build_model(cfg: ModelParams) -> keras.Model:
    """Conv blocks -> Flatten -> Dropout -> Dense -> Dropout -> Dense softmax."""
    layers: list[keras.layers.Layer] = [keras.Input(INPUT_SHAPE)]
    for filters in cfg.conv_filters:
        layers.append(
            keras.layers.Conv2D(filters, cfg.kernel_size, use_bias=not cfg.batch_norm)
        )
        if cfg.batch_norm:
            layers.append(keras.layers.BatchNormalization())
        layers += [
            keras.layers.Activation("relu"),
            keras.layers.MaxPooling2D(cfg.pool_size),
        ]
    layers += [
        keras.layers.Flatten(),
        keras.layers.Dropout(cfg.flatten_dropout),
        keras.layers.Dense(cfg.dense_units, activation="relu"),
        keras.layers.Dropout(cfg.dense_dropout),
        keras.layers.Dense(N_CLASSES, activation="softmax"),
    ]
    return keras.Sequential(layers, name="mnist_cnn")
