"""Exception hierarchy of the project: every failure a user can fix has a type."""

from kedro.io import DatasetError


class MnistMlopsError(Exception):
    """Base class of the project's errors."""


class DataSourceError(MnistMlopsError):
    """The raw data could not be found or is not what it claims to be."""


class DataValidationError(MnistMlopsError):
    """The raw table does not have the MNIST CSV layout or values."""


class ParameterError(MnistMlopsError):
    """A parameter file holds an unknown key or an invalid value."""


class ParityError(MnistMlopsError):
    """The exported LiteRT model does not agree with the Keras model."""


class MissingDependencyError(MnistMlopsError):
    """A package that a step needs is not installed in this environment."""


class CalibrationError(MnistMlopsError):
    """The model's confidence cannot be calibrated (its logits are not reachable)."""


class QualityGateError(MnistMlopsError):
    """The trained model scores below a quality threshold: it is not a candidate."""


class FeedbackValidationError(MnistMlopsError):
    """Labelled feedback from the store breaks the contract (labels, inputs, ids)."""


class PromotionError(MnistMlopsError, DatasetError):
    """Publishing the champion failed; the previous champion was left in place.

    Also a Kedro DatasetError, so Kedro reports it as it is when the release
    dataset raises it.
    """


class RawFileError(DataValidationError, DatasetError):
    """The raw file cannot be parsed: truncated, ragged rows or binary bytes.

    Also a Kedro DatasetError, so Kedro reports it as it is, after the dataset name.
    """


class RunInterrupted(MnistMlopsError):
    """`kedro run` received SIGINT (Ctrl-C) or SIGTERM while a pipeline ran."""
