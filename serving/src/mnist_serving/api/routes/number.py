"""Reading a whole number from one image: the work behind POST /predict-number."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import numpy as np
from PIL import Image

from mnist_serving.api.deps import PredictContext
from mnist_serving.api.routes.feedback import record
from mnist_serving.core.workers import inline, small
from mnist_serving.imaging.decode import open_image, shown_size
from mnist_serving.imaging.offload import decode_in_child
from mnist_serving.imaging.segment import MAX_ASPECT, work_image, work_side
from mnist_serving.model.number_reader import NumberReading, read_gray
from mnist_serving.model.predictions import AuditContext, to_predictions
from mnist_serving.model.review import number_review


def _read(image: Image.Image, ctx: PredictContext) -> NumberReading:
    """Segment and classify a small image decoded inline; a worker thread."""
    return _read_gray(work_image(image), shown_size(image), ctx)


def _read_gray(
    gray: np.ndarray, size: tuple[int, int], ctx: PredictContext
) -> NumberReading:
    """Segment and classify a number's work image; a worker thread."""
    max_digits = ctx.settings.max_number_digits
    return read_gray(gray, size, ctx.model.predict_outputs, max_digits)


async def answer_number(data: bytes, ctx: PredictContext) -> dict[str, Any]:
    """The response of /predict-number for one image's bytes.

    Segmentation and the batched model call take milliseconds, so they run in
    a worker thread under the batch limiter (the batch interpreter is shared).
    A large upload is first decoded in a child process within its CPU budget,
    outside that limiter.
    """
    settings = ctx.settings
    limiter = ctx.request.app.state.batch_limiter
    if small(data):
        image = open_image(data, settings.max_image_pixels, max_aspect=MAX_ASPECT)
        if inline(image, settings):
            reading = await anyio.to_thread.run_sync(_read, image, ctx, limiter=limiter)
            return _answer(reading, ctx)
    workers = ctx.request.app.state.image_workers
    gray, size = await decode_in_child(workers, data, settings, MAX_ASPECT, work_side)
    reading = await anyio.to_thread.run_sync(
        _read_gray, gray, size, ctx, limiter=limiter
    )
    return _answer(reading, ctx)


def _answer(reading: NumberReading, ctx: PredictContext) -> dict[str, Any]:
    """The response body of a reading, with its metrics, audit lines and record."""
    request = ctx.request
    audit = AuditContext(
        ctx.request_id, ctx.caller.id, request.url.path, request.state.started
    )
    digits = to_predictions(reading.probabilities, ctx.settings, audit)
    for digit, box, whole in zip(digits, reading.boxes, reading.whole, strict=True):
        digit["box"] = box
        digit["whole"] = float(whole)
    confidence = reading.confidence
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
