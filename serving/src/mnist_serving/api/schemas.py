"""Request and response bodies of the API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mnist_serving.model.review import Review

MAX_DRAWING_KEYS = 8  # the drawing body has one; a few more get their own errors


class DrawingRequest(BaseModel):
    """What the drawing page sends."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(
        min_length=1,
        description="PNG or JPEG as a data URL (data:image/png;base64,...) or bare "
        "base64.",
        examples=["data:image/png;base64,iVBORw0KGgo..."],
        json_schema_extra={"format": "image-data-url"},  # a hint; not validated
    )

    @model_validator(mode="before")
    @classmethod
    def _few_keys(cls, data: Any) -> Any:
        """Refuse a body of many keys with one error that says what to send.

        Floods of keys never get here (`json_body` refuses them unparsed); this
        says plainly what a body of a few stray keys should have been, instead
        of an "extra inputs" error per key.
        """
        if isinstance(data, dict) and len(data) > MAX_DRAWING_KEYS:
            msg = f"body has {len(data)} keys; send only {{'image': '<base64>'}}"
            raise ValueError(msg)
        return data


class Prediction(BaseModel):
    """One classified digit."""

    digit: int = Field(ge=0, le=9, description="The predicted digit.")
    confidence: float = Field(ge=0, le=1, description="Probability of `digit`.")
    probabilities: list[float] = Field(
        min_length=10, max_length=10, description="Probability of each digit 0-9."
    )
    review: Review = Field(description="Quality-assurance routing of this result.")


class PredictionResponse(Prediction):
    """A prediction with the model version and the request id."""

    model_version: str
    request_id: str


class BatchResponse(BaseModel):
    """Predictions for a batch, in the order the images were sent."""

    predictions: list[Prediction]
    count: int
    model_version: str
    request_id: str


class NumberDigit(Prediction):
    """One digit of a number, with where it was found."""

    box: list[int] = Field(
        min_length=4,
        max_length=4,
        description="x, y, width, height of the digit's ink in the input's pixels.",
    )
    whole: float = Field(
        ge=0,
        le=1,
        description="Probability that this crop is one whole digit, not a piece of "
        "one or two digits merged (1 for a model without that output).",
    )


class NumberResponse(BaseModel):
    """A whole number read from one image, digits left to right."""

    number: str = Field(description="The digits read, as a string.")
    digits: list[NumberDigit]
    confidence: float = Field(
        ge=0,
        le=1,
        description="Product over the digits of `confidence` times `whole`: the "
        "chance that every crop is one whole digit and is read right, if their "
        "errors are independent.",
    )
    review: Review = Field(
        description="Routing of the whole number: the band of `confidence` (never "
        "better than its weakest digit's), one band lower when the segmentation is "
        "in doubt."
    )
    segmentation_doubts: list[str] = Field(
        description="Why the split into digits may be wrong, and where a dot or "
        "comma stands between digits (it is not in `number`); empty when clear."
    )
    model_version: str
    request_id: str


class ErrorBody(BaseModel):
    """Every error: a message that names the problem and the fix."""

    detail: Any


class LiveResponse(BaseModel):
    """The process answers."""

    status: Literal["alive"]


class ReadyResponse(BaseModel):
    """A verified model is loaded."""

    status: Literal["ready"]
    model_version: str


class HealthResponse(BaseModel):
    """Combined status of the process and the model."""

    status: Literal["ok", "unavailable"]
    model_loaded: bool
    model_version: str | None
    reason: str | None = Field(
        description="Why not ready: model_not_loaded, model_invalid or "
        "shutting_down; the log says more."
    )
    service_version: str
    uptime_seconds: float
    last_reload_failed: bool = Field(
        default=False,
        description="The last reload was refused (the served model is unchanged); "
        "/model-info and the log say why.",
    )
    feedback_store: Literal["off", "starting", "ok", "unavailable"] = Field(
        default="off",
        description="The feedback store: `unavailable` while its database cannot "
        "be reached. Predictions go on either way, so readiness ignores it.",
    )
    feedback_records_lost: int = Field(
        default=0,
        description="Prediction records this process could not store (its queue "
        "was full while the store was down).",
    )


class ReloadResponse(BaseModel):
    """What POST /admin/reload did."""

    status: Literal["reloaded", "unchanged"]
    model_version: str
    previous_version: str | None
    sha256: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "The image could not be decoded.",
        401: "Missing or invalid API key.",
        413: "Body, base64 text or pixel count above its limit.",
        415: "Not a PNG or JPEG.",
        422: "Invalid input, such as no ink found or too many images.",
        429: "Rate limit exceeded; see Retry-After.",
        503: "No model loaded, or too many requests in flight.",
    }.items()
}
