"""The model card: the one contract between the training pipeline and serving.

The training project builds its card with `ModelCard` and writes
`model_dump(mode="json")`; serving reads it back with `parse_card`. Both sides
therefore agree on every field, and a card that either side would not
understand fails where it is written, not where it is served. This module
imports pydantic only, so the training project can use it without the server.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
MODEL_FILE = "mnist_cnn.tflite"
SHA256_PATTERN = r"^[0-9a-f]{64}$"


class CardError(ValueError):
    """A model card that does not follow the contract."""


class PreprocessingSpec(BaseModel):
    """How an image must be turned into the model's input (serving's imaging/)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = (
        "Grayscale, white digit on black; crop to the ink, scale the longer side "
        "to 20 px, centre by centre of mass in 28x28, divide by 255."
    )
    scale: Literal[255] = 255
    polarity: Literal["white-on-black"] = "white-on-black"
    digit_box: Literal[20] = 20
    canvas: Literal[28] = 28
    centering: Literal["center_of_mass"] = "center_of_mass"


class CardMetrics(BaseModel):
    """What the model scored; further metrics (drawn set, calibration) may follow."""

    model_config = ConfigDict(extra="allow", frozen=True)

    test_accuracy: float = Field(ge=0, le=1)
    official_test_accuracy: float = Field(ge=0, le=1)
    test_loss: float | None = None
    official_test_loss: float | None = None
    average_confidence: float | None = Field(default=None, ge=0, le=1)
    per_class_accuracy: dict[str, float] | None = None


class Calibration(BaseModel):
    """How the exported probabilities were calibrated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["temperature_scaling", "none"] = "temperature_scaling"
    temperature: float = Field(gt=0, description="Logits were divided by it.")
    baked_into_model: bool = Field(
        default=True, description="The export applies it; serving does nothing."
    )


class ModelCard(BaseModel):
    """Everything a consumer of the exported LiteRT model needs to know."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    model_file: str = MODEL_FILE
    model_sha256: str = Field(pattern=SHA256_PATTERN)
    model_bytes: int | None = Field(default=None, ge=1)
    format: Literal["litert"] = "litert"
    quantization: Literal["dynamic_range", "none"]
    classes: list[int] = Field(default_factory=lambda: list(range(NUM_CLASSES)))
    input_shape: list[int] = Field(default_factory=lambda: list(INPUT_SHAPE))
    input_dtype: Literal["float32"] = "float32"
    output: str = "float32 [N, 10] softmax probabilities"
    preprocessing: PreprocessingSpec = Field(default_factory=PreprocessingSpec)
    metrics: CardMetrics
    calibration: Calibration | None = None
    quality_gate: dict[str, Any] | None = None  # thresholds the run passed
    parity: dict[str, Any] = Field(default_factory=dict)
    dataset: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    mlflow_run_id: str | None = None
    git_commit: str | None = None
    created_at: str

    @field_validator("classes")
    @classmethod
    def _ten_digits(cls, value: list[int]) -> list[int]:
        if value != list(range(NUM_CLASSES)):
            msg = f"classes must be 0..9, got {value}"
            raise ValueError(msg)
        return value

    @field_validator("input_shape")
    @classmethod
    def _mnist_shape(cls, value: list[int]) -> list[int]:
        if tuple(value) != INPUT_SHAPE:
            msg = f"input_shape must be [28, 28, 1], got {value}"
            raise ValueError(msg)
        return value


def parse_card(raw: bytes | str, where: str) -> ModelCard:
    """Parse and validate a card's JSON; CardError names `where` and the fix."""
    try:
        return ModelCard.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        msg = f"model card {where} is invalid: {exc}; re-export the model"
        raise CardError(msg) from exc
