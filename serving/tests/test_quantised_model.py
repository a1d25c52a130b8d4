"""The served model is the dynamic-range export; integer outputs are refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from conftest import FIXTURES, MODEL_ROOT, MODEL_URI, running
from mnist_serving.model.location import locate_uri
from mnist_serving.model.runtime import load_model

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
