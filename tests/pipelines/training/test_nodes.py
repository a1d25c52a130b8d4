"""training nodes: architecture, training, evaluation, export, parity, the card.

The card is checked by serving itself: the export loads in mnist_serving.
"""

from __future__ import annotations

import hashlib
import json

import keras
import numpy as np
import pandas as pd
import pytest
from ai_edge_litert.interpreter import Interpreter
from kedro.config import OmegaConfigLoader
from mnist_serving.model.card import NOT_A_DIGIT, ModelCard
from mnist_serving.model.location import locate_uri
from mnist_serving.model.runtime import load_model
from pydantic import ValidationError

from mnist_mlops.errors import ParameterError, ParityError, QualityGateError
from mnist_mlops.modeling.cnn import build_model
from mnist_mlops.modeling.litert import litert_predict
from mnist_mlops.modeling.loop import with_feedback
from mnist_mlops.modeling.serving_view import litert_predictor
from mnist_mlops.params import ModelParams, TrainingParams
from mnist_mlops.pipelines.data_processing.nodes import normalize
from mnist_mlops.pipelines.training.nodes import (
    build_model_card,
    check_parity,
    collect_metrics,
    compute_drift_reference,
    draw_training_digits,
    evaluate_drawn,
    evaluate_model,
    export_model,
    fit_calibration,
    make_segment_examples,
    quality_gate,
    report_training,
    train_model,
)
from mnist_mlops.settings import CONFIG_LOADER_ARGS
from tests.conftest import ROOT

FAST = {"epochs": 2, "batch_size": 64}
# A 2-epoch model on 1,500 images is no candidate; these tests check the plumbing.
NO_GATE = {"min_official_test_accuracy": 0, "min_drawn_test_accuracy": 0}
RUN_INFO = {
    "version": "2026-01-01T00.00.00.000Z",
    "mlflow_run_id": "abc",
    "git_commit": "deadbeef",
    "created_at": "2026-01-01T00:00:00+00:00",
}


def test_seed_architecture() -> None:
    model = build_model(ModelParams())
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "Conv2D",
        "Activation",
        "MaxPooling2D",
        "Conv2D",
        "Activation",
        "MaxPooling2D",
        "Flatten",
        "Dropout",
        "Dense",
        "Dropout",
        "Dense",
    ]
    assert [layer.rate for layer in model.layers if hasattr(layer, "rate")] == [
        0.5,
        0.3,
    ]
    assert model.output_shape == (None, 10)
    assert model.count_params() == 225_034


@pytest.mark.parametrize(
    ("env", "filters", "outputs", "params"),
    [("seed", [32, 64], 10, 225_034), ("base", [16, 16, 32, 32, 64, 64], 11, None)],
)
def test_each_configuration_builds_its_own_network(
    env, filters, outputs, params
) -> None:
    # The seed's environment overrides only the keys it names: it must name the
    # seed's blocks and its ten outputs, or it would train the default network
    # under the seed's name. "base" alone, so that a developer's git-ignored
    # conf/local cannot interfere.
    loader = OmegaConfigLoader(str(ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS)
    cfg = TrainingParams(**loader["parameters"]["training"])
    model = build_model(cfg.model, not_a_digit=cfg.not_a_digit.enabled)
    convs = [x for x in model.layers if isinstance(x, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == filters
    assert model.output_shape == (None, outputs)
    assert params is None or model.count_params() == params
    # The seed trains on MNIST's digits alone; the default on drawn ones too.
    assert (cfg.drawn_training.share > 0) == (env == "base")


def test_deeper_blocks_are_a_parameter() -> None:
    model = build_model(ModelParams(convs_per_block=2, dense_units=256))
    convs = [x for x in model.layers if isinstance(x, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [32, 32, 64, 64]
    assert model.layers[-3].units == 256


def test_training_parameters_are_strict() -> None:
    with pytest.raises(ParameterError, match=r"parameters_training\.yml: epoch"):
        train_model(np.zeros((4, 28, 28, 1)), np.zeros(4), {"epoch": 3})
    with pytest.raises(ParameterError, match=r"early_stopping\.monitor"):
        train_model(
            np.zeros((4, 28, 28, 1)),
            np.zeros(4),
            {"early_stopping": {"monitor": "loss"}},
        )


def test_batch_norm_is_a_parameter_not_a_fork() -> None:
    model = build_model(ModelParams(batch_norm=True))
    assert (
        sum(isinstance(x, keras.layers.BatchNormalization) for x in model.layers) == 2
    )


@pytest.fixture(scope="module")
def arrays(sample_table: pd.DataFrame) -> dict[str, np.ndarray]:
    images, labels = normalize(sample_table)
    return {
        "x_train": images[:1500],
        "y_train": labels[:1500],
        "x_test": images[1500:1700],
        "y_test": labels[1500:1700],
        "x_off": images[1700:],
        "y_off": labels[1700:],
    }


def test_training_digits_are_drawn_from_the_fitted_rows_only(arrays) -> None:
    # 100 rows, the last 20 the validation slice: labelled 9 there and 0-8 before,
    # so a drawn 9 would be a validation digit that calibration then scores.
    x = arrays["x_train"][:100]
    y = np.where(np.arange(100) < 80, arrays["y_train"][:100] % 9, 9)
    params = {"validation_fraction": 0.2, "drawn_training": {"share": 1.0}}
    x_drawn, y_drawn = draw_training_digits(x, y, params)
    assert x_drawn.shape == (80, 28, 28, 1) and x_drawn.dtype == x.dtype
    np.testing.assert_array_equal(y_drawn, y[:80])  # every fitted row, in order
    assert 0.0 <= x_drawn.min() and x_drawn.max() <= 1.0
    # Drawn anew, not copied: pen, slant and position change the pixels.
    assert not np.allclose(x_drawn, x[:80], atol=0.1)
    # The same seed draws the same digits; a share draws that part of the rows.
    again, _ = draw_training_digits(x, y, params)
    np.testing.assert_array_equal(again, x_drawn)
    half = {**params, "drawn_training": {"share": 0.5, "seed": 3}}
    x_half, y_half = draw_training_digits(x, y, half)
    assert len(x_half) == 40 and set(y_half) <= set(range(9))
    none = draw_training_digits(x, y, {"validation_fraction": 0.2})
    assert none[0].shape == (0, 28, 28, 1) and none[1].shape == (0,)


@pytest.fixture(scope="module")
def trained(arrays: dict[str, np.ndarray]) -> tuple[keras.Model, dict]:
    return train_model(arrays["x_train"], arrays["y_train"], FAST)


@pytest.mark.slow
def test_training_learns_and_reports_each_epoch(trained) -> None:
    _model, history = trained
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == FAST["epochs"] for v in history.values())
    assert history["loss"][1] < history["loss"][0]
    assert history["val_accuracy"][-1] > 0.5  # 10 classes: chance is 0.1
    figure, per_epoch = report_training(history)
    assert sorted(per_epoch) == [
        "train_accuracy",
        "train_loss",
        "val_accuracy",
        "val_loss",
    ]
    assert [p["step"] for p in per_epoch["val_loss"]] == [1, 2]
    assert len(figure.axes) == 2


@pytest.mark.slow
def test_augmented_training_runs_with_the_same_code(arrays) -> None:
    params = {
        **FAST,
        "epochs": 1,
        "augmentation": {"enabled": True},
        "model": {"batch_norm": True},
    }
    _, history = train_model(arrays["x_train"], arrays["y_train"], params)
    assert len(history["loss"]) == 1


@pytest.mark.slow
def test_evaluate_export_parity_and_card(trained, arrays, tmp_path) -> None:
    model, _ = trained
    metrics, figure, probs = evaluate_model(
        model, arrays["x_test"], arrays["y_test"], arrays["x_off"], arrays["y_off"]
    )
    drawn, _ = evaluate_drawn(
        model, arrays["x_off"], arrays["y_off"], {"temperature": 1.0}, {}
    )
    metrics, scalars = collect_metrics(metrics, drawn, {})
    for key in (
        "test_accuracy",
        "test_loss",
        "official_test_accuracy",
        "average_confidence",
    ):
        assert 0 <= metrics[key] <= (1 if key != "test_loss" else 10)
        assert scalars[key]["value"] == metrics[key]
    assert sorted(metrics["per_class_accuracy"]) == [str(d) for d in range(10)]
    assert np.sum(metrics["official_confusion_matrix"]) == len(arrays["y_off"])
    assert probs.shape == (200, 10)
    assert figure.axes

    official = (arrays["x_off"], arrays["y_off"])
    model_bytes = export_model(model, {"export": {"quantization": "none"}})
    litert_probs = litert_predict(model_bytes, arrays["x_test"])
    np.testing.assert_allclose(litert_probs, probs, atol=1e-4)
    params = {"export": {"quantization": "none"}}
    parity = check_parity(model_bytes, probs, arrays["x_test"], *official, params)
    assert parity["argmax_agreement"] >= 0.999
    assert parity["quantization"] == "none"
    keras_official = metrics["official_test_accuracy"]
    assert parity["litert_official_test_accuracy"] == pytest.approx(keras_official)

    dataset = {"name": "mnist_full", "rows": 2000, "sha256": "0" * 64}
    reference = compute_drift_reference(
        model_bytes, arrays["x_train"], arrays["y_train"], params
    )
    card = build_model_card(
        model_bytes, metrics, parity, dataset, RUN_INFO, params, None, None, reference
    )
    assert card["drift_reference"] == reference
    assert reference["size"] == 150  # the 10% validation slice of 1,500 rows
    assert set(reference["features"]) == {
        "ink_fraction",
        "stroke_width",
        "log2_scale",
        "offset",
        "confidence",
        "digit",
    }
    stroke = reference["features"]["stroke_width"]
    assert 1.0 < stroke["edges"][len(stroke["edges"]) // 2] < 3.0  # MNIST: ~2 px
    assert sum(reference["review_shares"].values()) == pytest.approx(1)
    assert card["model_sha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert card["quantization"] == "none"
    assert card["parity"]["litert_official_test_accuracy"] == pytest.approx(
        keras_official
    )
    assert card["classes"] == list(range(10))
    assert card["input_shape"] == [28, 28, 1]
    assert card["preprocessing"]["digit_box"] == 20
    assert (
        card["metrics"]["official_test_accuracy"] == metrics["official_test_accuracy"]
    )
    for key in ("mlflow_run_id", "git_commit", "created_at", "version"):
        assert card[key] == RUN_INFO[key]
    assert_serving_loads(model_bytes, card, arrays["x_test"], litert_probs, tmp_path)

    with pytest.raises(ParityError, match=r"agrees with the Keras model on \d"):
        check_parity(
            model_bytes, np.roll(probs, 1, axis=1), arrays["x_test"], *official, {}
        )


@pytest.mark.slow
def test_the_not_a_digit_output_is_trained_exported_and_served(
    arrays, tmp_path
) -> None:
    crops = {"numbers": 60, "examples": 150, "digit_examples": 90}
    off = {**FAST, "epochs": 1}
    empty_x, empty_y = make_segment_examples(arrays["x_train"], arrays["y_train"], off)
    assert empty_x.shape == (0, 28, 28, 1) and empty_y.shape == (0,)

    params = {**off, "not_a_digit": {"enabled": True, **crops}}
    params["export"] = {"quantization": "none"}
    x_crops, y_crops = make_segment_examples(
        arrays["x_train"], arrays["y_train"], params
    )
    assert (y_crops == NOT_A_DIGIT).sum() == 150
    assert len(y_crops) == 240
    model, _ = train_model(
        arrays["x_train"], arrays["y_train"], params, None, None, x_crops, y_crops
    )
    assert model.output_shape == (None, 11)

    # Every digit figure is the ten digits' renormalised share, in Keras and LiteRT.
    calibration = fit_calibration(model, arrays["x_train"], arrays["y_train"], params)
    data = (arrays["x_test"], arrays["y_test"], arrays["x_off"], arrays["y_off"])
    metrics, _, probs = evaluate_model(model, *data, calibration, params)
    assert probs.shape == (200, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    model_bytes = export_model(model, params, calibration)
    outputs = litert_predictor(model_bytes)(arrays["x_test"])
    assert outputs.shape == (200, 11)
    assert outputs[:, NOT_A_DIGIT].max() > 0.0
    litert_probs = litert_predict(model_bytes, arrays["x_test"])
    np.testing.assert_allclose(litert_probs, probs, atol=1e-4)
    official = (arrays["x_off"], arrays["y_off"])
    parity = check_parity(model_bytes, probs, arrays["x_test"], *official, params)
    assert parity["argmax_agreement"] >= 0.999

    dataset = {"name": "mnist_full", "rows": 2000, "sha256": "0" * 64}
    drawn, _ = evaluate_drawn(model, *official, calibration, params)
    metrics, _ = collect_metrics(metrics, drawn, params)
    card = build_model_card(
        model_bytes, metrics, parity, dataset, RUN_INFO, params, calibration
    )
    assert card["not_a_digit_output"] is True
    assert card["output"].startswith("float32 [N, 11]")
    assert_serving_loads(model_bytes, card, arrays["x_test"], litert_probs, tmp_path)


def assert_serving_loads(model_bytes, card, images, expected, folder) -> None:
    """Serving finds, verifies and runs the export as Kedro's catalog lays it out."""
    version = card["version"]
    for name, data in (("mnist_cnn.tflite", model_bytes), ("model_card.json", None)):
        path = folder / name / version / name
        path.parent.mkdir(parents=True)
        if data is None:
            path.write_text(json.dumps(card))
        else:
            path.write_bytes(data)
    served = load_model(locate_uri(str(folder / "mnist_cnn.tflite")))
    assert served.version == version
    assert served.card == ModelCard.model_validate(card)
    np.testing.assert_allclose(served.predict(images[:, :, :, 0]), expected, atol=1e-5)


def test_drift_reference_needs_a_validation_slice_of_50_images(arrays) -> None:
    few = arrays["x_train"][:300], arrays["y_train"][:300]
    with pytest.raises(ValueError, match="at least 50 images") as caught:
        compute_drift_reference(b"unused", *few, {"validation_fraction": 0.1})
    assert "got 30 images" in str(caught.value)
    assert "larger validation set" in str(caught.value)


def test_a_card_serving_would_refuse_fails_the_run() -> None:
    metrics = {key: 0.5 for key in ("test_accuracy", "test_loss", "official_test_loss")}
    metrics |= {"official_test_accuracy": 1.5, "average_confidence": 0.9}
    metrics["per_class_accuracy"] = {}
    with pytest.raises(ValidationError, match="official_test_accuracy"):
        build_model_card(b"model", metrics, {}, {}, RUN_INFO, {})


@pytest.mark.slow
def test_dynamic_range_export_is_smaller_float_io_and_agrees(trained, arrays) -> None:
    model, _ = trained
    official = (arrays["x_off"], arrays["y_off"])
    metrics, _, probs = evaluate_model(
        model, arrays["x_test"], arrays["y_test"], *official
    )
    plain = export_model(model, {"export": {"quantization": "none"}})
    quantised = export_model(model, {})  # the default: dynamic_range
    assert len(quantised) < len(plain) / 3  # int8 weights instead of float32
    for entry in (
        Interpreter(model_content=quantised).get_input_details()[0],
        Interpreter(model_content=quantised).get_output_details()[0],
    ):
        assert entry["dtype"] == np.float32  # serving feeds and reads it unchanged
    parity = check_parity(quantised, probs, arrays["x_test"], *official, {})
    assert parity["quantization"] == "dynamic_range"
    assert parity["argmax_agreement"] >= 0.999
    accuracy_drop = (
        metrics["official_test_accuracy"] - parity["litert_official_test_accuracy"]
    )
    assert abs(accuracy_drop) <= 0.01
    dataset = {"name": "mnist_full", "rows": 2000, "sha256": "0" * 64}
    card = build_model_card(quantised, metrics, parity, dataset, RUN_INFO, {})
    assert card["quantization"] == "dynamic_range"
    assert card["model_bytes"] == len(quantised)


def test_unknown_quantization_is_refused_with_the_choices() -> None:
    expected = r"export\.quantization: .*'dynamic_range'"
    with pytest.raises(ParameterError, match=expected):
        export_model(keras.Sequential(), {"export": {"quantization": "int4"}})


@pytest.mark.slow
def test_calibration_is_fitted_reported_and_baked_into_the_export(
    trained, arrays
) -> None:
    model, _ = trained
    calibration = fit_calibration(model, arrays["x_train"], arrays["y_train"], FAST)
    assert calibration["method"] == "temperature_scaling"
    assert calibration["validation_samples"] == 150  # the last 10% of 1,500 rows
    assert calibration["validation_nll_after"] <= calibration["validation_nll_before"]
    temperature = calibration["temperature"]
    assert temperature != pytest.approx(1.0, abs=1e-3)

    data = (arrays["x_test"], arrays["y_test"], arrays["x_off"], arrays["y_off"])
    metrics, _, probs = evaluate_model(model, *data, calibration, {})
    raw, _, raw_probs = evaluate_model(model, *data)
    assert metrics["official_test_accuracy"] == raw["official_test_accuracy"]
    assert metrics["ece_official_before"] == raw["ece_official_after"]
    assert not np.allclose(probs, raw_probs)
    bands = metrics["review_bands_official"]
    assert sum(b["count"] for b in bands.values()) == len(arrays["y_off"])

    params = {"export": {"quantization": "none"}}
    model_bytes = export_model(model, params, calibration)
    np.testing.assert_allclose(
        litert_predict(model_bytes, arrays["x_test"]), probs, atol=1e-4
    )
    parity = check_parity(
        model_bytes, probs, arrays["x_test"], arrays["x_off"], arrays["y_off"], params
    )
    assert parity["argmax_agreement"] >= 0.999

    drawn, figure = evaluate_drawn(
        model, arrays["x_off"], arrays["y_off"], calibration, {}
    )
    assert drawn["drawn_test_accuracy"] == metrics["official_test_accuracy"]
    assert figure.axes
    metrics, scalars = collect_metrics(metrics, drawn, {})
    assert set(metrics["review_bands"]) == {"thresholds", "official", "drawn"}
    assert metrics["review_bands"]["thresholds"] == {
        "auto_approved": 0.95,
        "secondary_verification": 0.80,
    }
    for key in ("drawn_test_accuracy", "ece_drawn_after", "ece_official_before"):
        assert scalars[key]["value"] == metrics[key]
    assert "drawn_auto_approved_error_rate" in scalars

    gate = quality_gate(metrics, {"quality_gate": NO_GATE})
    dataset = {"name": "mnist_full", "rows": 2000, "sha256": "0" * 64}
    card = build_model_card(
        model_bytes, metrics, parity, dataset, RUN_INFO, params, calibration, gate
    )
    assert card["calibration"] == {
        "temperature": temperature,
        "method": "temperature_scaling",
        "baked_into_model": True,
    }
    assert card["metrics"]["drawn_test_accuracy"] == metrics["drawn_test_accuracy"]
    assert card["metrics"]["review_bands"] == metrics["review_bands"]
    assert card["quality_gate"]["passed"] is True


def test_quality_gate_names_the_metric_the_threshold_and_the_fix() -> None:
    metrics = {"official_test_accuracy": 0.995, "drawn_test_accuracy": 0.91}
    params = {"quality_gate": {"min_drawn_test_accuracy": 0.97}}
    with pytest.raises(QualityGateError) as raised:
        quality_gate(metrics, params)
    message = str(raised.value)
    assert "Model 'mnist-digit-classifier' failed the quality gate" in message
    assert (
        "drawn_test_accuracy 0.9100 is below "
        "training.quality_gate.min_drawn_test_accuracy 0.9700"
    ) in message
    assert "official_test_accuracy" not in message  # that one passed
    assert "not registered as a candidate" in message
    assert "--params training.quality_gate." in message
    assert quality_gate(metrics, {"quality_gate": {"min_drawn_test_accuracy": 0.9}})[
        "passed"
    ]


def test_feedback_joins_the_fitted_rows_with_its_weight() -> None:
    x, y = np.zeros((10, 28, 28, 1), np.float32), np.arange(10)
    x_fb, y_fb = np.ones((3, 28, 28, 1), np.float32), np.array([7, 7, 7])
    xs, ys, weights = with_feedback(x, y, x_fb, y_fb, 2.5)
    assert xs.shape == (13, 28, 28, 1)
    assert ys[-3:].tolist() == [7, 7, 7]
    assert weights.tolist() == [1.0] * 10 + [2.5] * 3
    empty = np.zeros((0, 28, 28, 1), np.float32)
    _, _, weights = with_feedback(x, y, empty, np.zeros(0, np.int64), 2.5)
    assert weights.tolist() == [1.0] * 10  # no feedback yet: MNIST alone


@pytest.mark.parametrize("augmented", [False, True])
def test_training_runs_with_weighted_feedback_plain_and_augmented(
    arrays, augmented: bool
) -> None:
    x, y = arrays["x_train"][:400], arrays["y_train"][:400]
    params = {
        "epochs": 1,
        "batch_size": 64,
        "feedback_weight": 3.0,
        "augmentation": {"enabled": augmented},
    }
    _, history = train_model(x, y, params, arrays["x_test"], arrays["y_test"])
    assert len(history["loss"]) == 1
    assert np.isfinite(history["loss"][0])
