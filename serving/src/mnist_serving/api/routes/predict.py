"""Prediction endpoints: an uploaded or raw image, a canvas drawing, or a batch."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
import numpy as np
from fastapi import APIRouter, Depends, File, Request, UploadFile

from mnist_serving.api.deps import PredictContext, PredictDep, get_predict_context
from mnist_serving.api.json_body import BoundedJSONRoute
from mnist_serving.api.routes.feedback import record
from mnist_serving.api.routes.number import answer_number
from mnist_serving.api.schemas import (
    ERROR_RESPONSES,
    BatchResponse,
    DrawingRequest,
    NumberResponse,
    PredictionResponse,
)
from mnist_serving.core.errors import (
    InvalidInputError,
    ServingError,
    TooLargeError,
    UnsupportedMediaError,
)
from mnist_serving.core.workers import inline, small
from mnist_serving.imaging.decode import (
    IMAGE_TYPES,
    MAX_ASPECT,
    check_bytes,
    decode_base64_image,
    open_image,
    to_grayscale,
)
from mnist_serving.imaging.offload import decode_in_child
from mnist_serving.imaging.preprocess import (
    IMAGE_FEATURES,
    BlankImageError,
    batch_to_mnist,
    gray_to_mnist,
    image_to_mnist,
)
from mnist_serving.model.predictions import AuditContext, to_predictions

BINARY = {"schema": {"type": "string", "format": "binary"}}
RAW_IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The image as multipart field `file`, or the whole body as "
        "`image/png` or `image/jpeg` (the fast path for scanners and batch "
        "clients).",
        "content": {"image/png": BINARY, "image/jpeg": BINARY},
    }
}
_common: dict[str, Any] = {
    "tags": ["predict"],
    "responses": ERROR_RESPONSES,
    "dependencies": [Depends(get_predict_context)],
}
# Two routers so that create_app can give each its own body-size limit.
router = APIRouter(**_common)  # images: multipart or raw
# The drawing page's JSON, its separators counted before it is parsed.
json_router = APIRouter(route_class=BoundedJSONRoute, **_common)


# The body's first bytes are checked as soon as they arrive (see `raw_image`).
EARLY_CHECK_BYTES = 64 * 1024


async def raw_image(request: Request, max_pixels: int) -> bytes:
    """The body of an image/png or image/jpeg request; else a 415/422 saying how.

    Its first EARLY_CHECK_BYTES go through `check_bytes` as they arrive: a PNG
    whose header declares too many pixels, a JPEG of too many scans or a body of
    another format is refused then, and uvicorn discards the rest of the body
    without handing it to the app, instead of the app queuing and joining
    megabytes that are refused anyway.
    """
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind in IMAGE_TYPES:
        chunks: list[bytes] = []
        size, checked = 0, False
        async for chunk in request.stream():
            chunks.append(chunk)
            size += len(chunk)
            if not checked and size >= EARLY_CHECK_BYTES:
                check_bytes(b"".join(chunks), max_pixels)
                checked = True
        return b"".join(chunks)
    if kind == "multipart/form-data":
        raise InvalidInputError(
            "multipart field 'file' with a PNG or JPEG file is required"
        )
    raise UnsupportedMediaError(
        f"Content-Type {kind or 'none'!r} is not accepted; send multipart/form-data "
        "with the image in field 'file', or the image itself as image/png or "
        "image/jpeg"
    )


def drift_features(count: int) -> np.ndarray:
    """Room for the drift features the preprocessing finds for `count` images."""
    return np.empty((count, len(IMAGE_FEATURES)))


async def to_model_input(
    data: bytes, ctx: PredictContext, features: np.ndarray | None = None
) -> np.ndarray:
    """(28, 28) model input of one image; its drift features into `features`.

    A small upload of few pixels is decoded on the event loop; any other in a
    child process within its CPU budget, waited for on a worker thread.
    """
    if small(data):
        image = open_image(data, ctx.settings.max_image_pixels)
        if inline(image, ctx.settings):
            return image_to_mnist(image, features)
    workers = ctx.request.app.state.image_workers
    gray, _ = await decode_in_child(workers, data, ctx.settings, MAX_ASPECT)
    return await workers.run(gray_to_mnist, gray, features)


async def to_gray(
    data: bytes, ctx: PredictContext, counted: int
) -> tuple[np.ndarray, int]:
    """Gray pixels of one batch image and its pixel count, decoded as above.

    `counted`: the pixels of the batch's images before this one.
    """
    if small(data):
        image = open_image(data, ctx.settings.max_image_pixels)
        if inline(image, ctx.settings):
            return to_grayscale(image), image.width * image.height
        # Few bytes, many pixels: counted before the costly decode.
        _check_batch_pixels(
            counted + image.width * image.height,
            ctx.settings.max_batch_pixels,
        )
    workers = ctx.request.app.state.image_workers
    gray, (width, height) = await decode_in_child(
        workers, data, ctx.settings, MAX_ASPECT
    )
    return gray, width * height


async def classify(
    images: np.ndarray, ctx: PredictContext, features: np.ndarray
) -> list[dict[str, Any]]:
    """One model call: inline for one image, in a worker thread for a batch.

    The images' drift `features` and the outputs go to the drift monitor.
    """
    if len(images) == 1:
        probabilities = ctx.model.predict(images)
    else:
        limiter = ctx.request.app.state.batch_limiter
        probabilities = await anyio.to_thread.run_sync(
            ctx.model.predict, images, limiter=limiter
        )
    request = ctx.request
    request.app.state.drift.observe(ctx.model, features, probabilities)
    audit = AuditContext(
        ctx.request_id, ctx.caller.id, request.url.path, request.state.started
    )
    return to_predictions(probabilities, ctx.settings, audit)


async def _answer_one(data: bytes, ctx: PredictContext) -> dict[str, Any]:
    features = drift_features(1)
    image = await to_model_input(data, ctx, features)
    (result,) = await classify(image[None], ctx, features)
    record(ctx, image[None], [result], batch=False)
    return {**result, "model_version": ctx.model.version, "request_id": ctx.request_id}


@router.post(
    "/predict",
    summary="Classify one PNG or JPEG: multipart or the raw image",
    response_model=PredictionResponse,
    openapi_extra=RAW_IMAGE_BODY,
)
async def predict(
    ctx: PredictDep,
    file: Annotated[
        UploadFile | None,
        File(description="PNG or JPEG, light-on-dark or dark-on-light."),
    ] = None,
) -> dict[str, Any]:
    """Classify one image: multipart field `file`, or the body as image/png|jpeg."""
    data = (
        await file.read()
        if file is not None
        else await raw_image(ctx.request, ctx.settings.max_image_pixels)
    )
    return await _answer_one(data, ctx)


@json_router.post(
    "/predict-drawing",
    summary="Classify a canvas drawing",
    response_model=PredictionResponse,
)
async def predict_drawing(body: DrawingRequest, ctx: PredictDep) -> dict[str, Any]:
    """Classify a data URL or bare base64 PNG, as the drawing page sends it."""
    data = decode_base64_image(body.image, ctx.settings.max_base64_chars)
    return await _answer_one(data, ctx)


def _check_batch_pixels(pixels: int, limit: int) -> None:
    """413 once the batch's images declare more pixels in all than the limit."""
    if pixels > limit:
        raise TooLargeError(
            f"the batch's images so far hold {pixels} pixels in all, above the "
            f"limit of {limit}; send fewer or smaller images"
        )


def _image_error(exc: ServingError, index: int, upload: UploadFile) -> ServingError:
    """An error of the same status, saying which image of the batch it is about."""
    error = ServingError(f"image {index} ({upload.filename}): {exc.detail}")
    error.status_code = exc.status_code
    return error


@router.post(
    "/predict-batch",
    summary="Classify several images in one model call",
    response_model=BatchResponse,
)
async def predict_batch(
    ctx: PredictDep,
    files: Annotated[
        list[UploadFile],
        File(description="PNG or JPEG images, the field repeated once per image."),
    ],
) -> dict[str, Any]:
    """Classify up to MAX_BATCH_IMAGES images sent as repeated multipart `files`.

    Each image counts against the rate limit (the request itself paid one).
    """
    limit = ctx.settings.max_batch_images
    if len(files) > limit:
        raise InvalidInputError(
            f"batch has {len(files)} images, above the limit of {limit}; "
            "split it into smaller batches"
        )
    if len(files) > 1:
        await ctx.limiter.charge(ctx.caller, cost=len(files) - 1)
    grays, pixels = [], 0
    for index, upload in enumerate(files):
        try:
            gray, count = await to_gray(await upload.read(), ctx, pixels)
            pixels += count
            _check_batch_pixels(pixels, ctx.settings.max_batch_pixels)
            grays.append(gray)
        except ServingError as exc:
            raise _image_error(exc, index, upload) from exc
    features = drift_features(len(grays))
    try:
        if sum(gray.size for gray in grays) <= ctx.settings.inline_pixels:
            images = batch_to_mnist(grays, features)
        else:
            images = await ctx.request.app.state.image_workers.run(
                batch_to_mnist, grays, features
            )
    except BlankImageError as exc:
        raise _image_error(exc, exc.index, files[exc.index]) from exc
    results = await classify(images, ctx, features)
    record(ctx, images, results, batch=True)
    return {
        "predictions": results,
        "count": len(results),
        "model_version": ctx.model.version,
        "request_id": ctx.request_id,
    }


@router.post(
    "/predict-number",
    summary="Read a whole handwritten number: multipart or the raw image",
    response_model=NumberResponse,
    openapi_extra=RAW_IMAGE_BODY,
)
async def predict_number(
    ctx: PredictDep,
    file: Annotated[
        UploadFile | None,
        File(description="PNG or JPEG of one number of up to MAX_NUMBER_DIGITS."),
    ] = None,
) -> dict[str, Any]:
    """Read the digits of one number, left to right: one model call for all the
    candidate crops, and one more for finer cuts where the split is in doubt."""
    data = (
        await file.read()
        if file is not None
        else await raw_image(ctx.request, ctx.settings.max_image_pixels)
    )
    return await answer_number(data, ctx)


@json_router.post(
    "/predict-number-drawing",
    summary="Read a whole number drawn on the page's wide canvas",
    response_model=NumberResponse,
)
async def predict_number_drawing(
    body: DrawingRequest, ctx: PredictDep
) -> dict[str, Any]:
    """Read a data URL or bare base64 PNG of a number, as the page sends it."""
    data = decode_base64_image(body.image, ctx.settings.max_base64_chars)
    return await answer_number(data, ctx)
