"""Strict models of the parameter files: a typo fails at the start, not mid-run."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mnist_mlops.errors import ParameterError


class Strict(BaseModel):
    """Base model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitParams(Strict):
    """How rows become train and test sets."""

    strategy: Literal["random", "official"] = "random"
    test_size: float = Field(0.2, gt=0, lt=1)
    seed: int = 42
    official_test_rows: int = Field(10_000, ge=1)
    sample_size: int | None = Field(None, ge=20)


class DrawnParams(Strict):
    """The drawn-digit test set rendered from the official test digits."""

    seed: int = 20261201


class DataProcessingParams(Strict):
    """parameters_data_processing.yml, key `data_processing`."""

    split: SplitParams = SplitParams()
    drawn: DrawnParams = DrawnParams()
    max_reported_bad_rows: int = Field(5, ge=1)


class ModelParams(Strict):
    """The CNN's architecture."""

    conv_filters: tuple[int, ...] = (32, 64)
    convs_per_block: int = Field(1, ge=1, le=4)
    kernel_size: int = Field(3, ge=1)
    padding: Literal["valid", "same"] = "valid"
    pool_size: int = Field(2, ge=1)
    dense_units: int = Field(128, ge=1)
    flatten_dropout: float = Field(0.5, ge=0, lt=1)
    dense_dropout: float = Field(0.3, ge=0, lt=1)
    batch_norm: bool = False


class AugmentationParams(Strict):
    """Random distortions of the training images (off in the seed config)."""

    enabled: bool = False
    rotation_degrees: float = Field(10.0, ge=0, le=45)
    zoom: float = Field(0.1, ge=0, lt=1)
    translation: float = Field(0.1, ge=0, lt=1)
    shear: float = Field(0.0, ge=0, le=1)
    elastic_pixels: float = Field(0.0, ge=0, le=5)
    elastic_grid: int = Field(4, ge=2, le=28)
    stroke_thin: float = Field(0.0, ge=0, le=1)
    stroke_thicken: float = Field(0.0, ge=0, le=2)
    restroke: float = Field(0.0, ge=0, le=1)
    recentre: bool = False
    recentre_shift: float = Field(1.0, ge=0, le=4)


class EarlyStoppingParams(Strict):
    """Keras EarlyStopping settings."""

    monitor: Literal["val_loss", "val_accuracy"] = "val_loss"
    patience: int = Field(3, ge=1)
    restore_best_weights: bool = True


class DistributedParams(Strict):
    """Multi-worker training; 1 worker is the plain single-process path."""

    workers: int = Field(1, ge=1)


class ExportParams(Strict):
    """How the trained model becomes the LiteRT file that serving loads."""

    quantization: Literal["none", "dynamic_range"] = "dynamic_range"


class CalibrationParams(Strict):
    """Temperature scaling fitted on the validation slice, and how it is measured."""

    enabled: bool = True
    ece_bins: int = Field(15, ge=2)


class ReviewBandParams(Strict):
    """Serving's review thresholds (its REVIEW_AUTO_APPROVE, REVIEW_SECONDARY)."""

    auto_approved: float = Field(0.95, gt=0, le=1)
    secondary_verification: float = Field(0.80, gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> ReviewBandParams:
        if self.secondary_verification >= self.auto_approved:
            raise ValueError(
                "review_bands.secondary_verification must be below auto_approved"
            )
        return self


class QualityGateParams(Strict):
    """Minimum accuracies of a model that may be registered as a candidate."""

    min_official_test_accuracy: float = Field(0.99, ge=0, le=1)
    min_drawn_test_accuracy: float = Field(0.95, ge=0, le=1)


class NumberSetParams(Strict):
    """The composed number test set, read by serving's number reader."""

    count: int = Field(1000, ge=0)  # numbers composed; 0 skips the evaluation
    seed: int = 20261213
    drawn_count: int = Field(0, ge=0)  # the same, written by drawn-digit writers
    drawn_seed: int = 20261214
    max_digits: int = Field(20, ge=12)  # serving's MAX_NUMBER_DIGITS


class NotADigitParams(Strict):
    """The "not one digit" output, taught on crops the number reader cuts."""

    enabled: bool = False  # false: ten outputs, as the seed's model
    numbers: int = Field(1500, ge=1)  # numbers of training digits composed and cut
    examples: int = Field(8000, ge=0)  # crops labelled "not one digit"
    digit_examples: int = Field(4000, ge=0)  # crops of whole digits, as cut
    # Share of `examples` holding much of two digits (see segment_examples).
    merge_share: float = Field(0.0, ge=0, le=1)
    # Share of the numbers written by drawn-digit writers (see segment_examples).
    drawn_share: float = Field(0.0, ge=0, le=1)
    seed: int = 20261202


class DrawnTrainingParams(Strict):
    """Training digits drawn as people draw them and read back as serving reads them."""

    share: float = Field(0.0, ge=0, le=1)  # of the fitted rows, drawn; 0: none
    seed: int = 20261203
    # Of the drawn 1s given a flag, of the drawn 4s redrawn closed at the top,
    # and of the drawn 7s given a bar across (`mnist_mlops.modeling.variants`):
    # writing MNIST's writers rarely use.
    flagged_ones: float = Field(0.0, ge=0, le=1)
    closed_fours: float = Field(0.0, ge=0, le=1)
    crossed_sevens: float = Field(0.0, ge=0, le=1)


class TrainingParams(Strict):
    """parameters_training.yml, key `training`."""

    seed: int = 42
    model: ModelParams = ModelParams()
    learning_rate: float = Field(1e-3, gt=0)
    lr_decay_per_epoch: float = Field(1.0, gt=0, le=1)
    batch_size: int = Field(128, ge=1)
    epochs: int = Field(15, ge=1)
    validation_fraction: float = Field(0.1, gt=0, lt=1)
    early_stopping: EarlyStoppingParams = EarlyStoppingParams()
    augmentation: AugmentationParams = AugmentationParams()
    distributed: DistributedParams = DistributedParams()
    export: ExportParams = ExportParams()
    min_parity_agreement: float = Field(0.999, gt=0, le=1)
    calibration: CalibrationParams = CalibrationParams()
    review_bands: ReviewBandParams = ReviewBandParams()
    quality_gate: QualityGateParams = QualityGateParams()
    numbers: NumberSetParams = NumberSetParams()
    not_a_digit: NotADigitParams = NotADigitParams()
    drawn_training: DrawnTrainingParams = DrawnTrainingParams()
    model_name: str = "mnist-digit-classifier"
    deployment_tag: str = "candidate"
    feedback_weight: float = Field(1.0, ge=0)

    @model_validator(mode="after")
    def _filters_given(self) -> TrainingParams:
        if not self.model.conv_filters:
            raise ValueError("model.conv_filters needs at least one layer")
        return self


class FeedbackParams(Strict):
    """parameters_feedback.yml, key `feedback`."""

    min_examples: int = Field(100, ge=1)
    holdout_fraction: float = Field(0.2, gt=0, lt=1)


class FloorParams(Strict):
    """The least accuracy a model may have on each set and still be champion."""

    official_test_accuracy: float = Field(0.99, ge=0, le=1)
    drawn_test_accuracy: float = Field(0.95, ge=0, le=1)
    feedback_holdout_accuracy: float = Field(0.0, ge=0, le=1)


class PromotionParams(Strict):
    """parameters_promotion.yml, key `promotion`."""

    tolerance: float = Field(0.002, ge=0, le=1)
    floors: FloorParams = FloorParams()
    min_feedback_holdout: int = Field(50, ge=1)


M = TypeVar("M", bound=Strict)


def parse(model: type[M], raw: dict[str, Any], where: str) -> M:
    """Validate `raw` against `model`, raising ParameterError that names the file."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ParameterError(
            f"Invalid parameters in {where}: {problems}. Fix the value in "
            f"conf/base/{where} (or the environment that overrides it)."
        ) from exc
