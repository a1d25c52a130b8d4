"""The CNN, built from parameters (the seed architecture by default)."""

from __future__ import annotations

import keras

# The model contract (serving's card): the input, and the ten digits' outputs,
# which an optional "not one digit" output (`card.NOT_A_DIGIT`) may follow.
from mnist_serving.model.card import INPUT_SHAPE
from mnist_serving.model.card import NUM_CLASSES as N_CLASSES

from mnist_mlops.params import ModelParams


def conv_block(filters: int, cfg: ModelParams) -> list[keras.layers.Layer]:
    """`convs_per_block` x (Conv2D [-> BatchNorm] -> ReLU), then MaxPool."""
    layers: list[keras.layers.Layer] = []
    for _ in range(cfg.convs_per_block):
        layers.append(
            keras.layers.Conv2D(
                filters,
                cfg.kernel_size,
                padding=cfg.padding,
                use_bias=not cfg.batch_norm,
            )
        )
        if cfg.batch_norm:
            layers.append(keras.layers.BatchNormalization())
        layers.append(keras.layers.Activation("relu"))
    return [*layers, keras.layers.MaxPooling2D(cfg.pool_size)]


def build_model(cfg: ModelParams, not_a_digit: bool = False) -> keras.Model:
    """Conv blocks -> Flatten -> Dropout -> Dense -> Dropout -> Dense softmax.

    The softmax covers the ten digits, and "not one digit" when `not_a_digit`.
    """
    blocks = [layer for f in cfg.conv_filters for layer in conv_block(f, cfg)]
    outputs = N_CLASSES + 1 if not_a_digit else N_CLASSES
    head = [
        keras.layers.Flatten(),
        keras.layers.Dropout(cfg.flatten_dropout),
        keras.layers.Dense(cfg.dense_units, activation="relu"),
        keras.layers.Dropout(cfg.dense_dropout),
        keras.layers.Dense(outputs, activation="softmax"),
    ]
    return keras.Sequential(
        [keras.Input(INPUT_SHAPE), *blocks, *head], name="mnist_cnn"
    )
