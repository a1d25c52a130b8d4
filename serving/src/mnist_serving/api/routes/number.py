"""Reading a whole number from one image: the work behind POST /predict-number."""

from __future__ import annotations

from typing import Any

import anyio.to_thread

from mnist_serving.api.deps import PredictContext
from mnist_serving.api.routes.feedback import record
from mnist_serving.model.number_reader import NumberReading, read_number_image
from mnist_serving.model.predictions import (
    AuditContext,
    number_review,
    to_predictions,
)


def _read(data: bytes, ctx: PredictContext) -> NumberReading:
    """Decode, segment and classify (one model call); runs in a worker thread."""
    settings = ctx.settings
    return read_number_image(
        data, ctx.model.predict, settings.max_number_digits, settings.max_image_pixels
    )


async def answer_number(data: bytes, ctx: PredictContext) -> dict[str, Any]:
    """The response of /predict-number for one image's bytes.

    Segmentation and the batched model call take milliseconds, so they run in
    a worker thread under the batch limiter (the batch interpreter is shared).
    """
    limiter = ctx.request.app.state.batch_limiter
    reading = await anyio.to_thread.run_sync(_read, data, ctx, limiter=limiter)
    request = ctx.request
    audit = AuditContext(
        ctx.request_id, ctx.caller.id, request.url.path, request.state.started
    )
    digits = to_predictions(reading.probabilities, ctx.settings, audit)
    confidence = 1.0
    for digit, box in zip(digits, reading.boxes, strict=True):
        digit["box"] = box
        confidence *= digit["confidence"]
    review = number_review(confidence, reading.doubts, ctx.settings)
    # Each digit is stored as a prediction of its own, `<request_id>:<place>` as
    # a batch's images are, so a clerk's correction of one digit is feedback. The
    # number's band (never above a digit's) routes all its digits to review.
    stored = [{**digit, "review": review} for digit in digits]
    record(ctx, reading.inputs, stored, batch=True)
    return {
        "number": reading.number,
        "digits": digits,
        "confidence": confidence,
        "review": review,
        "segmentation_doubts": reading.doubts,
        "model_version": ctx.model.version,
        "request_id": ctx.request_id,
    }
