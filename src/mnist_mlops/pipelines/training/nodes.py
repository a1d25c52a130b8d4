"""Nodes of training: pure functions from arrays to a model, metrics and an export."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from kedro_azureml.distributed import distributed_job
from kedro_azureml.distributed.config import Framework
from matplotlib.figure import Figure
from mnist_serving.model.card import MODEL_FILE, CardMetrics, ModelCard
from sklearn.metrics import confusion_matrix

from mnist_mlops.errors import ParityError
from mnist_mlops.modeling.litert import export_litert, litert_predict
from mnist_mlops.modeling.loop import History, predict_proba, train
from mnist_mlops.modeling.plots import confusion_matrix_figure, training_curves
from mnist_mlops.params import TrainingParams, parse

logger = logging.getLogger(__name__)

PARAMS_FILE = "parameters_training.yml"
N_CLASSES = 10
CARD_METRICS = (
    "test_accuracy",
    "test_loss",
    "official_test_accuracy",
    "official_test_loss",
    "average_confidence",
    "per_class_accuracy",
)


# On Azure ML (kedro-azureml), this step runs as a TensorFlow job of N instances,
# TF_CONFIG set on each; elsewhere the decorator changes nothing.
@distributed_job(Framework.TensorFlow, num_nodes="params:training.distributed.workers")
def train_model(
    x_train: np.ndarray, y_train: np.ndarray, params: dict[str, Any]
) -> tuple[keras.Model, History]:
    """Train the CNN; one worker trains in-process, N under MultiWorkerMirrored."""
    cfg = parse(TrainingParams, params, PARAMS_FILE)
    strategy = (
        tf.distribute.MultiWorkerMirroredStrategy()
        if cfg.distributed.workers > 1
        else None
    )
    return train(x_train, y_train, cfg, strategy)


def report_training(history: History) -> tuple[Figure, dict[str, list[dict]]]:
    """Training-curves figure and the per-epoch metrics in MLflow's history form."""
    per_epoch = {
        (key if key.startswith("val_") else f"train_{key}"): [
            {"step": i + 1, "value": v} for i, v in enumerate(values)
        ]
        for key, values in history.items()
    }
    return training_curves(history), per_epoch


def _scores(y: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    hits = probs.argmax(-1) == y
    loss = keras.losses.sparse_categorical_crossentropy(y, probs)
    return {
        "accuracy": float(hits.mean()),
        "loss": float(np.mean(loss)),
        "per_class_accuracy": {
            str(d): float(hits[y == d].mean())
            for d in range(N_CLASSES)
            if (y == d).any()
        },
    }


def evaluate_model(
    model: keras.Model,
    x_test: np.ndarray,
    y_test: np.ndarray,
    x_official: np.ndarray,
    y_official: np.ndarray,
) -> tuple[dict[str, Any], dict[str, dict], Figure, np.ndarray]:
    """Score the test split and the official test set.

    Returns the metrics report, its scalars for MLflow, the official-set confusion
    matrix figure and the test-split probabilities (for the parity check).
    """
    probs = predict_proba(model, x_test)
    official_probs = predict_proba(model, x_official)
    test, official = _scores(y_test, probs), _scores(y_official, official_probs)
    matrix = confusion_matrix(
        y_official, official_probs.argmax(-1), labels=range(N_CLASSES)
    )
    metrics = {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "official_test_accuracy": official["accuracy"],
        "official_test_loss": official["loss"],
        "per_class_accuracy": test["per_class_accuracy"],
        "official_per_class_accuracy": official["per_class_accuracy"],
        "average_confidence": float(probs.max(-1).mean()),
        "test_samples": len(y_test),
        "official_test_samples": len(y_official),
        "official_confusion_matrix": matrix.tolist(),
    }
    scalars = {
        k: {"value": v, "step": 0} for k, v in metrics.items() if isinstance(v, float)
    }
    scalars |= {
        f"per_class_accuracy_{d}": {"value": v, "step": 0}
        for d, v in test["per_class_accuracy"].items()
    }
    logger.info(
        "Test accuracy %.4f, official test accuracy %.4f.",
        test["accuracy"],
        official["accuracy"],
    )
    title = f"Official test set: accuracy {official['accuracy']:.4f}"
    return metrics, scalars, confusion_matrix_figure(matrix, title), probs


def export_model(model: keras.Model, params: dict[str, Any]) -> bytes:
    """The model as a LiteRT flatbuffer, quantised as `export.quantization` says."""
    cfg = parse(TrainingParams, params, PARAMS_FILE)
    return export_litert(model, cfg.export.quantization)


def check_parity(  # noqa: PLR0913, PLR0917 - a node's inputs are its datasets
    model_bytes: bytes,
    keras_probs: np.ndarray,
    x_test: np.ndarray,
    x_official: np.ndarray,
    y_official: np.ndarray,
    params: dict[str, Any],
) -> dict[str, Any]:
    """Fail unless LiteRT's predicted classes agree with Keras on the test split.

    Also scores the exported model itself on the official test set: with a
    quantised export that is the accuracy serving delivers, not Keras's.
    """
    cfg = parse(TrainingParams, params, PARAMS_FILE)
    quantization = cfg.export.quantization
    litert_probs = litert_predict(model_bytes, x_test)
    agreement = float(np.mean(litert_probs.argmax(-1) == keras_probs.argmax(-1)))
    max_diff = float(np.abs(litert_probs - keras_probs).max())
    if agreement < cfg.min_parity_agreement:
        raise ParityError(
            f"LiteRT export '{MODEL_FILE}' (quantization {quantization!r}) agrees "
            f"with the Keras model on {agreement:.4%} of {len(x_test)} test images, "
            f"below the required {cfg.min_parity_agreement:.2%} (max probability "
            f"difference {max_diff:.3g}). The conversion changed the model: set "
            "training.export.quantization to 'none', or check for layers LiteRT "
            "does not support, before deploying it."
        )
    official = litert_predict(model_bytes, x_official).argmax(-1) == y_official
    logger.info(
        "LiteRT parity (%s): %.4f%% agreement, max diff %.2g; official test "
        "accuracy %.4f.",
        quantization,
        agreement * 100,
        max_diff,
        official.mean(),
    )
    return {
        "quantization": quantization,
        "argmax_agreement": agreement,
        "max_probability_difference": max_diff,
        "images": len(x_test),
        "litert_official_test_accuracy": float(official.mean()),
        "official_test_samples": len(y_official),
    }


def build_model_card(  # noqa: PLR0913, PLR0917 - a node's inputs are its datasets
    model_bytes: bytes,
    metrics: dict[str, Any],
    parity: dict[str, Any],
    dataset_info: dict[str, Any],
    run_info: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """The model card, built with serving's own contract so that serving can read it.

    `ModelCard` validates every field here: a card serving would refuse fails the
    run that writes it, not the deployment that loads it.
    """
    cfg = parse(TrainingParams, params, PARAMS_FILE)
    card = ModelCard(
        name=cfg.model_name,
        version=run_info["version"],
        model_file=MODEL_FILE,
        model_sha256=hashlib.sha256(model_bytes).hexdigest(),
        model_bytes=len(model_bytes),
        quantization=cfg.export.quantization,
        metrics=CardMetrics(**{k: metrics[k] for k in CARD_METRICS}),
        parity=parity,
        dataset=dataset_info,
        training=cfg.model_dump(mode="json"),
        mlflow_run_id=run_info["mlflow_run_id"],
        git_commit=run_info["git_commit"],
        created_at=run_info["created_at"],
    )
    return card.model_dump(mode="json")
