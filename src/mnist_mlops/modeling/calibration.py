"""Calibrated confidence: temperature scaling, expected calibration error, review bands.

The CNN ends in Dense(10, softmax). Its logits are recovered by a copy of that
last layer without the softmax, so a temperature T can be applied as
softmax(logits / T) and baked into the exported model: serving reads calibrated
probabilities with no change of its own.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from mnist_mlops.errors import CalibrationError

from .cnn import INPUT_SHAPE, N_CLASSES
from .loop import predict_proba

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0


def logits_model(model: keras.Model) -> keras.Model:
    """The same network (shared weights) with its final softmax removed."""
    head = model.layers[-1]
    if not (
        isinstance(head, keras.layers.Dense)
        and head.activation is keras.activations.softmax
    ):
        raise CalibrationError(
            f"Model '{model.name}' ends in {type(head).__name__} "
            f"({getattr(head, 'activation', None)}), not Dense(softmax): its logits "
            "cannot be recovered for temperature scaling. End the network with "
            "Dense(10, activation='softmax') (mnist_mlops.modeling.cnn)."
        )
    linear = keras.layers.Dense(head.units, name="logits")
    inputs = keras.Input(INPUT_SHAPE)
    features = inputs
    for layer in model.layers[:-1]:
        features = layer(features)
    outputs = linear(features)
    linear.set_weights(head.get_weights())
    return keras.Model(inputs, outputs, name=f"{model.name}_logits")


def calibrated_model(model: keras.Model, temperature: float) -> keras.Model:
    """softmax(logits / temperature): the model that is exported and served."""
    logits = logits_model(model)
    scaled = keras.layers.Rescaling(1.0 / temperature, name="temperature")(
        logits.output
    )
    probs = keras.layers.Softmax(name="probabilities")(scaled)
    return keras.Model(logits.input, probs, name=f"{model.name}_calibrated")


def predict_logits(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The ten digits' logits of many images, in a few large batches.

    A "not one digit" output is left out: the softmax of the digits' logits is
    what serving answers for a digit (the renormalised digit probabilities), so
    the temperature is fitted, and accuracy and calibration measured, on it.
    """
    return predict_proba(logits_model(model), images)[:, :N_CLASSES]


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the labels at a temperature."""
    logp = log_softmax(logits / temperature, axis=-1)
    return float(-np.mean(logp[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood (Guo et al., 2017)."""
    result = minimize_scalar(
        lambda log_t: nll(logits, labels, float(np.exp(log_t))),
        bounds=(np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)),
        method="bounded",
    )
    return float(np.exp(result.x))


def probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / temperature), float32."""
    return softmax(logits / temperature, axis=-1).astype(np.float32)


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, bins: int = 15
) -> float:
    """ECE: the bin-weighted gap between confidence and accuracy, equal-width bins."""
    confidence = probs.max(-1)
    hits = probs.argmax(-1) == labels
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            gap = abs(hits[members].mean() - confidence[members].mean())
            total += members.mean() * gap
    return float(total)


def review_bands(
    probs: np.ndarray, labels: np.ndarray, auto_approved: float, secondary: float
) -> dict[str, dict[str, Any]]:
    """Share of predictions and their error rate in each of serving's review bands.

    Bands as serving assigns them: confidence >= `auto_approved` is
    `auto_approved`, >= `secondary` `secondary_verification`, else `manual_review`.
    """
    confidence = probs.max(-1)
    errors = probs.argmax(-1) != labels
    masks = {
        "auto_approved": confidence >= auto_approved,
        "secondary_verification": (confidence >= secondary)
        & (confidence < auto_approved),
        "manual_review": confidence < secondary,
    }
    return {
        band: {
            "share": float(mask.mean()),
            "count": int(mask.sum()),
            "errors": int(errors[mask].sum()),
            "error_rate": float(errors[mask].mean()) if mask.any() else 0.0,
        }
        for band, mask in masks.items()
    }
