"""The served model is the dynamic-range export; integer outputs are refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, MODEL_ROOT, MODEL_URI, png, running
from mnist_serving.model.location import locate_uri
from mnist_serving.model.runtime import CHUNK, load_model

INT8_OUTPUT = FIXTURES / "int8_output.tflite"


def test_fixture_is_dynamic_range_with_float_input_and_output(sample):
    model = load_model(locate_uri(MODEL_URI))
    assert model.card.model_dump()["quantization"] == "dynamic_range"
    images = sample["images"].astype(np.float32) / 255.0
    probabilities = model.predict(images)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    accuracy = float((probabilities.argmax(axis=1) == sample["labels"]).mean())
    assert accuracy >= 0.97  # the card says 0.985 on the official 10k


def test_a_big_batch_runs_in_chunks_with_the_same_outputs(sample):
    model = load_model(locate_uri(MODEL_URI))
    images = np.concatenate([sample["images"]] * 4)[: 2 * CHUNK + 37]
    images = images.astype(np.float32) / 255.0
    outputs = model.predict_outputs(images)
    assert outputs.shape == (len(images), 10)
    # The interpreter was never sized to the whole batch, and each image's
    # outputs are those it gets in a chunk of its own.
    assert model._batch_size <= CHUNK
    np.testing.assert_allclose(outputs[-37:], model.predict_outputs(images[-37:]))
    np.testing.assert_allclose(outputs[:3], model.predict_outputs(images[:3]))


def test_model_with_an_integer_output_is_refused_with_the_fix(tmp_path: Path):
    content = INT8_OUTPUT.read_bytes()
    (tmp_path / "mnist_cnn.tflite").write_bytes(content)
    card_file = next(MODEL_ROOT.glob("model_card.json/*/model_card.json"))
    card = json.loads(card_file.read_text())
    card["model_sha256"] = hashlib.sha256(content).hexdigest()
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    with running(model_uri=str(tmp_path)) as client:
        ready = client.get("/health/ready")
        detail = client.get("/model-info").json()["detail"]
    assert ready.status_code == 503
    assert "model output is int8, expected float32" in detail
    assert "dynamic_range" in detail


NOT_A_DIGIT_OUTPUT = FIXTURES / "not_a_digit_output.tflite"


def model_folder(folder: Path, content: bytes, not_a_digit_output: bool) -> str:
    """A model folder holding `content` and the fixture's card, adapted to it."""
    (folder / "mnist_cnn.tflite").write_bytes(content)
    card_file = next(MODEL_ROOT.glob("model_card.json/*/model_card.json"))
    card = json.loads(card_file.read_text())
    card["model_sha256"] = hashlib.sha256(content).hexdigest()
    card["model_bytes"] = len(content)
    card["not_a_digit_output"] = not_a_digit_output
    (folder / "model_card.json").write_text(json.dumps(card))
    return str(folder)


def test_a_not_one_digit_output_is_served_as_ten_renormalised_digits(
    tmp_path: Path, sample
):
    content = NOT_A_DIGIT_OUTPUT.read_bytes()
    model = load_model(locate_uri(model_folder(tmp_path, content, True)))
    images = sample["images"][:5].astype(np.float32) / 255.0
    outputs = model.predict_outputs(images)
    assert outputs.shape == (5, 11)
    np.testing.assert_allclose(outputs[:, 10], 3 / 13, atol=1e-5)
    # Every digit answer reads the ten digits' share: 1/13 each, renormalised.
    np.testing.assert_allclose(model.predict(images), 0.1, atol=1e-5)
    np.testing.assert_allclose(model.predict(images[:1]), 0.1, atol=1e-5)
    with running(model_uri=str(tmp_path)) as client:
        body = client.post(
            "/predict",
            content=png(sample["images"][0]),
            headers={"content-type": "image/png"},
        ).json()
    assert body["probabilities"] == pytest.approx([0.1] * 10, abs=1e-5)


@pytest.mark.parametrize(
    ("content", "declared", "says"),
    [
        (NOT_A_DIGIT_OUTPUT, False, "but its card says (N, 10)"),
        (FIXTURES / "model" / "mnist_cnn.tflite", True, "but its card says (N, 11)"),
    ],
)
def test_a_model_and_card_that_disagree_on_the_outputs_are_refused(
    tmp_path: Path, content: Path, declared: bool, says: str
):
    if content.is_dir():
        content = next(content.glob("*/mnist_cnn.tflite"))
    folder = model_folder(tmp_path, content.read_bytes(), declared)
    with running(model_uri=folder) as client:
        ready = client.get("/health/ready")
        detail = client.get("/model-info").json()["detail"]
    assert ready.status_code == 503
    assert says in detail
    assert "re-export the model and its card together" in detail
