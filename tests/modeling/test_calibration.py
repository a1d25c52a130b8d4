"""Temperature scaling, expected calibration error and review bands."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from scipy.special import softmax

from mnist_mlops.errors import CalibrationError
from mnist_mlops.modeling.calibration import (
    calibrated_model,
    expected_calibration_error,
    fit_temperature,
    logits_model,
    predict_logits,
    probabilities,
    review_bands,
)
from mnist_mlops.modeling.cnn import build_model
from mnist_mlops.modeling.loop import predict_proba
from mnist_mlops.params import ModelParams


def sampled(logits: np.ndarray, seed: int = 0) -> np.ndarray:
    """Labels drawn from softmax(logits): a perfectly calibrated classifier."""
    rng = np.random.default_rng(seed)
    probs = softmax(logits, axis=-1)
    return np.array([rng.choice(10, p=p) for p in probs])


@pytest.fixture(scope="module")
def true_logits() -> np.ndarray:
    return np.random.default_rng(1).normal(0, 3, size=(4000, 10))


def test_temperature_undoes_overconfidence(true_logits: np.ndarray) -> None:
    labels = sampled(true_logits)
    overconfident = true_logits * 2.5  # what the model says: far too sure
    assert fit_temperature(overconfident, labels) == pytest.approx(2.5, rel=0.1)
    before = expected_calibration_error(probabilities(overconfident), labels)
    after = expected_calibration_error(probabilities(overconfident, 2.5), labels)
    assert before > 0.1
    assert after < 0.03


def test_ece_of_a_known_case() -> None:
    probs = np.zeros((4, 10))
    probs[:, 0] = [0.9, 0.9, 0.6, 0.6]
    probs[:, 1] = 1 - probs[:, 0]
    labels = np.array([0, 0, 0, 1])  # bin 0.9: 100% right; bin 0.6: 50% right
    expected = 0.5 * abs(1 - 0.9) + 0.5 * abs(0.5 - 0.6)
    assert expected_calibration_error(probs, labels) == pytest.approx(expected)


def test_review_bands_split_every_prediction() -> None:
    probs = np.zeros((5, 10))
    probs[:, 3] = [0.99, 0.96, 0.9, 0.5, 0.95]
    probs[:, 4] = 1 - probs[:, 3]
    labels = np.array([3, 4, 3, 3, 3])
    bands = review_bands(probs, labels, auto_approved=0.95, secondary=0.8)
    assert {b: v["count"] for b, v in bands.items()} == {
        "auto_approved": 3,
        "secondary_verification": 1,
        "manual_review": 1,
    }
    assert bands["auto_approved"]["error_rate"] == pytest.approx(1 / 3)
    assert sum(v["share"] for v in bands.values()) == pytest.approx(1)


def test_calibrated_model_is_softmax_of_logits_over_temperature() -> None:
    model = build_model(ModelParams())
    images = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    logits = predict_logits(model, images)
    np.testing.assert_allclose(
        softmax(logits, -1), predict_proba(model, images), atol=1e-6
    )
    scaled = predict_proba(calibrated_model(model, 2.0), images)
    np.testing.assert_allclose(scaled, softmax(logits / 2.0, -1), atol=1e-6)
    assert (scaled.argmax(-1) == logits.argmax(-1)).all()


def test_a_model_without_softmax_head_is_refused_with_the_fix() -> None:
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten()])
    with pytest.raises(CalibrationError, match=r"Dense\(10, activation='softmax'\)"):
        logits_model(model)
