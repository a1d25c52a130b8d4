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
from mnist_serving.model.card import (
    MODEL_FILE,
    NOT_A_DIGIT,
    Calibration,
    CardMetrics,
    ModelCard,
)
from sklearn.metrics import confusion_matrix

from mnist_mlops.errors import ParityError, QualityGateError
from mnist_mlops.modeling import variants
from mnist_mlops.modeling.calibration import (
    calibrated_model,
    expected_calibration_error,
    fit_temperature,
    nll,
    predict_logits,
    probabilities,
    review_bands,
)
from mnist_mlops.modeling.cnn import N_CLASSES
from mnist_mlops.modeling.drawn import fine_skeletons
from mnist_mlops.modeling.litert import export_litert, litert_predict
from mnist_mlops.modeling.loop import History, train, validation_split
from mnist_mlops.modeling.number_set import (
    compose_drawn_numbers,
    compose_numbers,
    number_metrics,
    to_png,
)
from mnist_mlops.modeling.plots import (
    confusion_matrix_figure,
    drawn_examples_figure,
    training_curves,
)
from mnist_mlops.modeling.segment_examples import segment_examples
from mnist_mlops.modeling.serving_view import (
    drift_reference,
    number_reader,
    skeleton_inputs,
)
from mnist_mlops.params import TrainingParams, parse

logger = logging.getLogger(__name__)

PARAMS_FILE = "parameters_training.yml"
# The writing variants draw from a random stream of their own (beside the drawn
# digits' seed), so that turning them on leaves every other drawing as it was.
VARIANTS_STREAM = 1


# On Azure ML (kedro-azureml), this step runs as a TensorFlow job of N instances,
# TF_CONFIG set on each; elsewhere the decorator changes nothing.
@distributed_job(Framework.TensorFlow, num_nodes="params:training.distributed.workers")
def train_model(  # noqa: PLR0913, PLR0917 - a node's inputs are its datasets
    x_train: np.ndarray,
    y_train: np.ndarray,
    params: dict[str, Any],
    x_feedback: np.ndarray | None = None,
    y_feedback: np.ndarray | None = None,
    x_segments: np.ndarray | None = None,
    y_segments: np.ndarray | None = None,
    x_drawn: np.ndarray | None = None,
    y_drawn: np.ndarray | None = None,
) -> tuple[keras.Model, History]:
    """Train the CNN; one worker trains in-process, N under MultiWorkerMirrored.

    Labelled feedback (empty arrays when there is none) joins the training rows
    with the loss weight `feedback_weight`; at weight 1 join the digits drawn
    anew (`draw_training_digits`) and, with `not_a_digit.enabled`, the number
    reader's labelled crops (`make_segment_examples`).
    """
    cfg = parse(TrainingParams, params, PARAMS_FILE)
    strategy = (
        tf.distribute.MultiWorkerMirroredStrategy()
        if cfg.distributed.workers > 1
        else None
    )
    if x_feedback is not None and len(x_feedback):
        logger.info(
            "Training on %d MNIST images and %d feedback examples (weight %s).",
            len(x_train),
            len(x_feedback),
            cfg.feedback_weight,
        )
    examples = []
    if cfg.not_a_digit.enabled and x_segments is not None:
        examples.append((x_segments, y_segments))
    if x_drawn is not None:
        examples.append((x_drawn, y_drawn))
    return train(x_train, y_train, cfg, strategy, x_feedback, y_feedback, examples)


def draw_training_digits(
    x_train: np.ndarray, y_train: np.ndarray, params: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Training digits drawn anew and read back as serving reads an upload.

    A share (`drawn_training.share`) of the rows that training fits, never of
    its validation slice (which calibration uses), is drawn as the drawn test
    set draws the official test digits, in other styles (another seed), so that
    training sees what serving's preprocessing makes of a drawing or a scan.
    Empty arrays when the share is 0.
    """
    cfg = parse(TrainingParams, params, PARAMS_FILE)
    own = cfg.drawn_training
    x_fit, y_fit, _, _ = validation_split(x_train, y_train, cfg.validation_fraction)
    rng = np.random.default_rng(own.seed)
    count = round(len(x_fit) * own.share)
    rows = np.sort(rng.choice(len(x_fit), count, replace=False))
    y = y_fit[rows].copy()
    skeletons = variants.vary(
        fine_skeletons(x_fit[rows]),
        y,
        variants.Shares(own.flagged_ones, own.closed_fours, own.crossed_sevens),
        np.random.default_rng([own.seed, VARIANTS_STREAM]),
    )
    x = skeleton_inputs(skeletons, own.seed).astype(x_train.dtype)
    logger.info(
        "Drew %d training digits anew (%.0f%% of the 1s flagged, %.0f%% of the "
        "4s closed, %.0f%% of the 7s crossed), read back as serving reads them.",
        len(y),
        100 * own.flagged_ones,
        100 * own.closed_fours,
        100 * own.crossed_sevens,
    )
    return x, y


def make_segment_examples(
    x_train: np.ndarray, y_train: np.ndarray, params: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Crops the number reader cuts from numbers of training digits, labelled.

    Whole digits keep their label, fragments and merged digits are "not one
    digit" (see `mnist_mlops.modeling.segment_examples`). Only the rows that
    training fits are used, never its validation slice. Empty arrays when
    `not_a_digit.enabled` is false.
    """
    cfg = parse(TrainingParams, params, PARAMS_FILE)
    own = cfg.not_a_digit
    if not own.enabled:
        return np.zeros((0, 28, 28, 1), np.float32), np.zeros(0, np.int64)
    x_fit, y_fit, _, _ = validation_split(x_train, y_train, cfg.validation_fraction)
    x, y = segment_examples(
        x_fit,
        y_fit,
        numbers=own.numbers,
        examples=own.examples,
        digit_examples=own.digit_examples,
        seed=own.seed,
        merge_share=own.merge_share,
        drawn_share=own.drawn_share,
    )
    logger.info(
        "Number reader's crops for training: %d not one digit, %d whole digits, "
        "from %d composed numbers.",
        int((y == NOT_A_DIGIT).sum()),
        int((y != NOT_A_DIGIT).sum()),
        own.numbers,
    )
    return x, y


def report_training(history: History) -> tuple[Figure, dict[str, list[dict]]]:
    """Training-curves figure and the per-epoch metrics in MLflow's history form."""
    per_epoch = {
        (key if key.startswith("val_") else f"train_{key}"): [
            {"step": i + 1, "value": v} for i, v in enumerate(values)
        ]
        for key, values in history.items()
    }
    return training_curves(history), per_epoch


def fit_calibration(
    model: keras.Model, x_train: np.ndarray, y_train: np.ndarray, params: dict[str, Any]
) -> dict[str, Any]:
    """Fit the softmax temperature on the validation slice that training held out."""
    cfg = parse(TrainingParams, params, PARAMS_FILE)
    _, _, x_val, y_val = validation_split(x_train, y_train, cfg.validation_fraction)
    logits = predict_logits(model, x_val)
    enabled = cfg.calibration.enabled
    temperature = fit_temperature(logits, y_val) if enabled else 1.0
    logger.info(
        "Temperature %.3f fitted on %d validation images.", temperature, len(y_val)
    )
    return {
        "method": "temperature_scaling" if enabled else "none",
        "temperature": temperature,
        "baked_into_model": enabled,
        "validation_samples": len(y_val),
        "validation_nll_before": nll(logits, y_val, 1.0),
        "validation_nll_after": nll(logits, y_val, temperature),
    }


def _scores(
    y: np.ndarray, logits: np.ndarray, temperature: float, cfg: TrainingParams
) -> dict[str, Any]:
    """Accuracy, loss, calibration and review bands of calibrated predictions."""
    probs = probabilities(logits, temperature)
    hits = probs.argmax(-1) == y
    bins = cfg.calibration.ece_bins
    bands = cfg.review_bands
    return {
        "accuracy": float(hits.mean()),
        "loss": nll(logits, y, temperature),
        "per_class_accuracy": {
            str(d): float(hits[y == d].mean())
            for d in range(N_CLASSES)
            if (y == d).any()
        },
        "ece_before": expected_calibration_error(probabilities(logits), y, bins),
        "ece_after": expected_calibration_error(probs, y, bins),
        "review_bands": review_bands(
            probs, y, bands.auto_approved, bands.secondary_verification
        ),
        "probs": probs,
    }


def _temperature(calibration: dict[str, Any] | None) -> float:
    return float(calibration["temperature"]) if calibration else 1.0


def evaluate_model(  # noqa: PLR0913, PLR0917 - a node's inputs are its datasets
    model: keras.Model,
    x_test: np.ndarray,
    y_test: np.ndarray,
    x_official: np.ndarray,
    y_official: np.ndarray,
    calibration: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Figure, np.ndarray]:
    """Score the test split and the official test set with calibrated confidence.

    Returns the metrics, the official-set confusion matrix figure and the
    test-split probabilities of the calibrated model (for the parity check).
    """
    cfg = parse(TrainingParams, params or {}, PARAMS_FILE)
    temperature = _temperature(calibration)
    test = _scores(y_test, predict_logits(model, x_test), temperature, cfg)
    official = _scores(y_official, predict_logits(model, x_official), temperature, cfg)
    matrix = confusion_matrix(
        y_official, official["probs"].argmax(-1), labels=range(N_CLASSES)
    )
    metrics = {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "official_test_accuracy": official["accuracy"],
        "official_test_loss": official["loss"],
        "per_class_accuracy": test["per_class_accuracy"],
        "official_per_class_accuracy": official["per_class_accuracy"],
        "average_confidence": float(test["probs"].max(-1).mean()),
        "test_samples": len(y_test),
        "official_test_samples": len(y_official),
        "official_confusion_matrix": matrix.tolist(),
        "ece_official_before": official["ece_before"],
        "ece_official_after": official["ece_after"],
        "review_bands_official": official["review_bands"],
    }
    logger.info(
        "Test accuracy %.4f, official test accuracy %.4f, official ECE %.4f.",
        test["accuracy"],
        official["accuracy"],
        official["ece_after"],
    )
    title = f"Official test set: accuracy {official['accuracy']:.4f}"
    return metrics, confusion_matrix_figure(matrix, title), test["probs"]


def evaluate_drawn(
    model: keras.Model,
    x_drawn: np.ndarray,
    y_drawn: np.ndarray,
    calibration: dict[str, Any],
    params: dict[str, Any],
) -> tuple[dict[str, Any], Figure]:
    """Score the drawn test set (digits as serving prepares uploads) and show some."""
    cfg = parse(TrainingParams, params, PARAMS_FILE)
    drawn = _scores(
        y_drawn, predict_logits(model, x_drawn), _temperature(calibration), cfg
    )
    metrics = {
        "drawn_test_accuracy": drawn["accuracy"],
        "drawn_test_loss": drawn["loss"],
        "drawn_per_class_accuracy": drawn["per_class_accuracy"],
        "drawn_test_samples": len(y_drawn),
        "ece_drawn_before": drawn["ece_before"],
        "ece_drawn_after": drawn["ece_after"],
        "review_bands_drawn": drawn["review_bands"],
    }
    logger.info(
        "Drawn test accuracy %.4f, drawn ECE %.4f.",
        drawn["accuracy"],
        drawn["ece_after"],
    )
    return metrics, drawn_examples_figure(x_drawn, y_drawn, drawn["probs"])


def evaluate_numbers(
    model_bytes: bytes,
    x_official: np.ndarray,
    y_official: np.ndarray,
    params: dict[str, Any],
) -> dict[str, Any]:
    """Read composed numbers of official test digits as POST /predict-number does:
    MNIST's own strokes (`number_test_*`) and, when `drawn_count` is set, the
    same kind of numbers written by drawn-digit writers (`number_drawn_*`).
    `number_test_exact_bound` is the share of numbers whose every digit the
    model reads right alone: no segmentation can read more of them.
    `<prefix>_review_bands` are the numbers' review bands as serving routes
    them with `review_bands`' thresholds, and the share of each read wrong.

    The exported LiteRT model is what serving runs, so the figures are those a
    caller of the service would see on these numbers.
    """
    training = parse(TrainingParams, params, PARAMS_FILE)
    cfg, bands = training.numbers, training.review_bands
    if cfg.count == 0:
        return {}
    digits = np.rint(x_official.reshape(-1, 28, 28) * 255).astype(np.uint8)
    numbers = compose_numbers(digits, y_official, cfg.count, cfg.seed)
    thresholds = (bands.auto_approved, bands.secondary_verification)
    read = number_reader(model_bytes, cfg.max_digits, thresholds)
    alone = litert_predict(model_bytes, x_official).argmax(axis=1) == y_official
    readings, routed = _unzip([read(to_png(n)) for n in numbers])
    metrics = number_metrics(numbers, readings, alone=alone, bands=routed)
    prefixes = ["number_test"]
    if cfg.drawn_count:
        drawn = compose_drawn_numbers(
            digits, y_official, cfg.drawn_count, cfg.drawn_seed
        )
        readings, routed = _unzip([read(data) for _, data in drawn])
        metrics |= number_metrics(
            [n for n, _ in drawn], readings, "number_drawn", bands=routed
        )
        prefixes.append("number_drawn")
    logger.info(
        "Numbers whose every digit the model reads right alone: %.4f (touching "
        "pairs %.4f); no split of the numbers reads more.",
        metrics["number_test_exact_bound"],
        metrics["number_test_touching_exact_bound"],
    )
    for prefix in prefixes:
        logger.info(
            "Composed numbers (%s) read exactly: %.4f (touching pairs %.4f), "
            "digits %.4f.",
            prefix,
            metrics[f"{prefix}_exact"],
            metrics[f"{prefix}_touching_exact"],
            metrics[f"{prefix}_digit_accuracy"],
        )
    return metrics


def _unzip(
    found: list[tuple[str, str] | None],
) -> tuple[list[str | None], list[str | None]]:
    """Readings and review bands of `number_reader`'s answers (None: refused)."""
    return [f[0] if f else None for f in found], [f[1] if f else None for f in found]


def collect_metrics(
    evaluation: dict[str, Any],
    drawn: dict[str, Any],
    params: dict[str, Any],
    numbers: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, dict]]:
    """One metrics report, and its scalars for MLflow (band figures flattened)."""
    cfg = parse(TrainingParams, params, PARAMS_FILE)
    bands = {
        "thresholds": cfg.review_bands.model_dump(),
        "official": evaluation["review_bands_official"],
        "drawn": drawn["review_bands_drawn"],
    }
    skip = ("review_bands_official", "review_bands_drawn")
    merged = evaluation | drawn | (numbers or {})
    metrics = {k: v for k, v in merged.items() if k not in skip}
    metrics["review_bands"] = bands
    scalars = {
        k: {"value": v, "step": 0} for k, v in metrics.items() if isinstance(v, float)
    }
    scalars |= {
        f"per_class_accuracy_{d}": {"value": v, "step": 0}
        for d, v in metrics["per_class_accuracy"].items()
    }
    routed = {name: bands[name] for name in ("official", "drawn")} | {
        key.removesuffix("_review_bands"): value
        for key, value in metrics.items()
        if key.startswith("number_") and key.endswith("_review_bands")
    }
    for name, figures_of in routed.items():
        for band, figures in figures_of.items():
            for key in ("share", "error_rate"):
                scalars[f"{name}_{band}_{key}"] = {"value": figures[key], "step": 0}
    return metrics, scalars


def quality_gate(metrics: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Stop the run, before anything is registered, if the model scores too low.

    The model card depends on this node's output, and saving the card is what
    registers the model (mnist_mlops.hooks), so a failing model never reaches
    the registry.
    """
    cfg = parse(TrainingParams, params, PARAMS_FILE)
    checks = {
        "official_test_accuracy": cfg.quality_gate.min_official_test_accuracy,
        "drawn_test_accuracy": cfg.quality_gate.min_drawn_test_accuracy,
    }
    failed = [
        f"{key} {metrics[key]:.4f} is below training.quality_gate.min_{key} "
        f"{minimum:.4f}"
        for key, minimum in checks.items()
        if metrics[key] < minimum
    ]
    if failed:
        raise QualityGateError(
            f"Model '{cfg.model_name}' failed the quality gate: {'; '.join(failed)}. "
            "It was not registered as a candidate. Train the default configuration "
            "(`kedro run`) or longer; for a smoke run only, lower the thresholds "
            "with --params training.quality_gate.<key>=<value>."
        )
    logger.info("Quality gate passed: %s.", checks)
    return {"passed": True, **{f"min_{k}": v for k, v in checks.items()}}


def export_model(
    model: keras.Model,
    params: dict[str, Any],
    calibration: dict[str, Any] | None = None,
) -> bytes:
    """The calibrated model (temperature baked in) as a LiteRT flatbuffer.

    Quantised as `export.quantization` says. Without a calibration, the model as
    trained.
    """
    cfg = parse(TrainingParams, params, PARAMS_FILE)
    if calibration and calibration["baked_into_model"]:
        model = calibrated_model(model, _temperature(calibration))
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


CARD_METRICS = (
    "number_test_exact",
    "number_test_touching_exact",
    "number_test_exact_bound",
    "number_test_touching_exact_bound",
    "number_test_review_bands",
    "number_drawn_review_bands",
    "number_test_digit_accuracy",
    "number_drawn_exact",
    "number_drawn_touching_exact",
    "number_drawn_digit_accuracy",
    "test_accuracy",
    "test_loss",
    "official_test_accuracy",
    "official_test_loss",
    "average_confidence",
    "per_class_accuracy",
    "drawn_test_accuracy",
    "ece_official_before",
    "ece_official_after",
    "ece_drawn_before",
    "ece_drawn_after",
    "review_bands",
)


def compute_drift_reference(
    model_bytes: bytes,
    x_train: np.ndarray,
    y_train: np.ndarray,
    params: dict[str, Any],
) -> dict[str, Any]:
    """The drift reference of the validation slice, as serving will see its inputs.

    The slice training held out goes through serving's preprocessing and the
    exported model; serving compares its recent predictions with the result
    (the card carries it, so each model has its own reference).
    """
    cfg = parse(TrainingParams, params, PARAMS_FILE)
    _, _, x_val, _ = validation_split(x_train, y_train, cfg.validation_fraction)
    bands = cfg.review_bands
    reference = drift_reference(
        x_val,
        lambda fields: litert_predict(model_bytes, fields),
        (bands.auto_approved, bands.secondary_verification),
    )
    logger.info(
        "Drift reference of %d validation images: manual review %.4f, "
        "low confidence %.4f.",
        reference["size"],
        reference["review_shares"]["manual_review"],
        reference["low_confidence_share"],
    )
    return reference


def build_model_card(  # noqa: PLR0913, PLR0917 - a node's inputs are its datasets
    model_bytes: bytes,
    metrics: dict[str, Any],
    parity: dict[str, Any],
    dataset_info: dict[str, Any],
    run_info: dict[str, Any],
    params: dict[str, Any],
    calibration: dict[str, Any] | None = None,
    gate: dict[str, Any] | None = None,
    reference: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The model card, built with serving's own contract so that serving can read it.

    Built only after the quality gate passed (`gate`): saving the card is what
    registers the model. `ModelCard` validates every field, so a card serving
    would refuse fails the run that writes it, not the deployment that loads it.
    """
    cfg = parse(TrainingParams, params, PARAMS_FILE)
    calibration = calibration or {"method": "none", "temperature": 1.0}
    card = ModelCard(
        name=cfg.model_name,
        version=run_info["version"],
        model_file=MODEL_FILE,
        model_sha256=hashlib.sha256(model_bytes).hexdigest(),
        model_bytes=len(model_bytes),
        quantization=cfg.export.quantization,
        output=(
            "float32 [N, 11] softmax probabilities (calibrated, see calibration): "
            "the digits 0-9, then 'not one digit'"
            if cfg.not_a_digit.enabled
            else "float32 [N, 10] softmax probabilities (calibrated, see calibration)"
        ),
        not_a_digit_output=cfg.not_a_digit.enabled,
        metrics=CardMetrics(**{k: metrics[k] for k in CARD_METRICS if k in metrics}),
        calibration=Calibration(
            method=calibration["method"],
            temperature=calibration["temperature"],
            baked_into_model=calibration.get("baked_into_model", False),
        ),
        quality_gate=gate or None,
        drift_reference=reference,
        parity=parity,
        dataset=dataset_info,
        training=cfg.model_dump(mode="json"),
        mlflow_run_id=run_info["mlflow_run_id"],
        git_commit=run_info["git_commit"],
        created_at=run_info["created_at"],
    )
    return card.model_dump(mode="json")
