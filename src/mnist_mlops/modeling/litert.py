"""Export a Keras model to a LiteRT flatbuffer and run it, as serving will."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

import keras
import numpy as np
import tensorflow as tf
from mnist_serving.model.card import digit_probabilities

from mnist_mlops.modeling.serving_view import litert_predictor

Quantization = Literal["none", "dynamic_range"]


def converter_options(quantization: Quantization) -> dict[str, Any]:
    """TFLite converter attributes for a quantization mode (Keras passes them on).

    `dynamic_range` stores weights as int8 and quantises activations at run time;
    the model's input and output stay float32, so serving feeds it unchanged.
    """
    if quantization == "dynamic_range":
        return {"optimizations": [tf.lite.Optimize.DEFAULT]}
    return {}


def export_litert(model: keras.Model, quantization: Quantization = "none") -> bytes:
    """Return the model as LiteRT (`.tflite`) bytes with a dynamic batch dimension."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        model.export(
            str(path),
            format="litert",
            verbose=False,
            **converter_options(quantization),
        )
        return path.read_bytes()


def litert_predict(model_bytes: bytes, images: np.ndarray) -> np.ndarray:
    """(N, 10) digit probabilities from the LiteRT model, in one invocation.

    As serving answers a digit: with a "not one digit" output, the ten digits'
    probabilities renormalised.
    """
    return digit_probabilities(litert_predictor(model_bytes)(images))
