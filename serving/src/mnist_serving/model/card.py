"""The model card: the one contract between the training pipeline and serving.

The training project builds its card with `ModelCard` and writes
`model_dump(mode="json")`; serving reads it back with `parse_card`. Both sides
therefore agree on every field, and a card that either side would not
understand fails where it is written, not where it is served. This module
imports pydantic and NumPy only, so the training project can use it without the
server.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
# A model may have one more output after the ten digits: "not one digit", the
# probability that its input is a fragment of a digit or several digits. The
# number reader uses it to score candidate crops; every digit answer reads the
# ten digits' probabilities renormalised (`digit_probabilities`).
NOT_A_DIGIT = NUM_CLASSES
MODEL_FILE = "mnist_cnn.tflite"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
MAX_EDGES = 100  # buckets per drift feature; each prediction bisects the edges


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


DriftFeature = Literal[
    "ink_fraction", "stroke_width", "log2_scale", "offset", "confidence", "digit"
]
ReviewBand = Literal["auto_approved", "secondary_verification", "manual_review"]


class FeatureReference(BaseModel):
    """One feature's buckets: inner edges and the reference share of each bucket.

    A value `x` falls in bucket `i` = the number of edges <= x, so k edges make
    k + 1 buckets and the outer ones are open-ended.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    edges: list[float] = Field(min_length=1, max_length=MAX_EDGES)
    proportions: list[float] = Field(min_length=2, max_length=MAX_EDGES + 1)

    @model_validator(mode="after")
    def _consistent(self) -> FeatureReference:
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            msg = f"edges must increase strictly, got {self.edges}"
            raise ValueError(msg)
        if len(self.proportions) != len(self.edges) + 1:
            msg = (
                f"{len(self.edges)} edges make {len(self.edges) + 1} buckets, but "
                f"{len(self.proportions)} proportions are given"
            )
            raise ValueError(msg)
        if min(self.proportions) <= 0 or not math.isclose(
            sum(self.proportions), 1.0, abs_tol=1e-3
        ):
            msg = f"proportions must be > 0 and sum to 1, got {self.proportions}"
            raise ValueError(msg)
        return self


class DriftReference(BaseModel):
    """What the validation data looked like through serving's preprocessing.

    Serving compares the same features of recent predictions with it (PSI).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int = Field(ge=1, description="Validation images it was computed on.")
    features: dict[DriftFeature, FeatureReference] = Field(min_length=1)
    review_thresholds: dict[Literal["auto_approve", "secondary"], float]
    review_shares: dict[ReviewBand, float]
    low_confidence_threshold: float = Field(gt=0, le=1)
    low_confidence_share: float = Field(ge=0, le=1)


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
    not_a_digit_output: bool = False  # output [N, 11]: index 10 is "not one digit"
    preprocessing: PreprocessingSpec = Field(default_factory=PreprocessingSpec)
    metrics: CardMetrics
    calibration: Calibration | None = None
    quality_gate: dict[str, Any] | None = None  # thresholds the run passed
    drift_reference: DriftReference | None = None  # None: drift monitoring off
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


def output_width(card: ModelCard) -> int:
    """How many outputs the card's model has: 10 digits, plus "not one digit"."""
    return NUM_CLASSES + 1 if card.not_a_digit_output else NUM_CLASSES


def digit_probabilities(outputs: np.ndarray) -> np.ndarray:
    """(N, 10) digit probabilities of a model's (N, 10) or (N, 11) outputs.

    With the "not one digit" output, the ten digits' share is renormalised: the
    softmax of the digits' logits alone, as if the input were surely a digit.
    """
    if outputs.shape[-1] == NUM_CLASSES:
        return outputs
    digits = outputs[..., :NUM_CLASSES]
    return digits / np.maximum(digits.sum(axis=-1, keepdims=True), 1e-12)


def parse_card(raw: bytes | str, where: str) -> ModelCard:
    """Parse and validate a card's JSON; CardError names `where` and the fix."""
    try:
        return ModelCard.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        msg = f"model card {where} is invalid: {exc}; re-export the model"
        raise CardError(msg) from exc
