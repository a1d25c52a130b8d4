"""Prediction endpoints: an uploaded image, a canvas drawing, or a batch."""

from __future__ import annotations

import json
from typing import Annotated, Any

import anyio.to_thread
import numpy as np
from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import Response

from mnist_serving.api.deps import PredictContext, PredictDep
from mnist_serving.errors import InvalidInputError, ServingError
from mnist_serving.preprocessing import decode_base64_image, image_to_mnist, open_image
from mnist_serving.schemas import (
    ERROR_RESPONSES,
    BatchResponse,
    DrawingRequest,
    PredictionResponse,
)
from mnist_serving.service import AuditContext, to_predictions

router = APIRouter(tags=["predict"], responses=ERROR_RESPONSES)


async def to_mnist(data: bytes, request: Request, ctx: PredictContext) -> np.ndarray:
    """Preprocess inline when small (microseconds), in a worker thread when large."""
    image = open_image(data, ctx.settings.max_image_pixels)
    if image.width * image.height <= ctx.settings.inline_pixels:
        return image_to_mnist(image)
    limiter = request.app.state.big_image_limiter
    return await anyio.to_thread.run_sync(image_to_mnist, image, limiter=limiter)


def _json(body: dict[str, Any]) -> Response:
    """Serialise once; the declared response_model documents the shape."""
    return Response(json.dumps(body).encode(), media_type="application/json")


def _predict(images: np.ndarray, ctx: PredictContext) -> list[dict[str, Any]]:
    audit = AuditContext(ctx.request_id, ctx.client_id, ctx.endpoint, ctx.started)
    return to_predictions(ctx.model.predict(images), ctx.settings, audit)


@router.post(
    "/predict",
    summary="Classify an uploaded PNG or JPEG",
    response_model=PredictionResponse,
)
async def predict(
    file: Annotated[
        UploadFile, File(description="PNG or JPEG, light-on-dark or dark-on-light.")
    ],
    ctx: PredictDep,
    request: Request,
) -> Response:
    """Classify one image sent as multipart field `file`."""
    image = await to_mnist(await file.read(), request, ctx)
    (result,) = _predict(image[None], ctx)
    result.update(model_version=ctx.model.version, request_id=ctx.request_id)
    return _json(result)


@router.post(
    "/predict-drawing",
    summary="Classify a canvas drawing",
    response_model=PredictionResponse,
)
async def predict_drawing(
    body: DrawingRequest, ctx: PredictDep, request: Request
) -> Response:
    """Classify a data URL or bare base64 PNG, as the drawing page sends it."""
    data = decode_base64_image(body.image, ctx.settings.max_base64_chars)
    image = await to_mnist(data, request, ctx)
    (result,) = _predict(image[None], ctx)
    result.update(model_version=ctx.model.version, request_id=ctx.request_id)
    return _json(result)


@router.post(
    "/predict-batch",
    summary="Classify several images in one model call",
    response_model=BatchResponse,
)
async def predict_batch(
    files: Annotated[
        list[UploadFile], File(description="PNG or JPEG images, repeated field.")
    ],
    ctx: PredictDep,
    request: Request,
) -> Response:
    """Classify up to MAX_BATCH_IMAGES images sent as repeated multipart `files`."""
    limit = ctx.settings.max_batch_images
    if len(files) > limit:
        raise InvalidInputError(
            f"batch has {len(files)} images, above the limit of {limit}; "
            "split it into smaller batches"
        )
    images = np.empty((len(files), 28, 28), dtype=np.float32)
    for index, upload in enumerate(files):
        try:
            images[index] = await to_mnist(await upload.read(), request, ctx)
        except ServingError as exc:
            name = upload.filename or "unnamed"
            raise type(exc)(f"image {index} ({name}): {exc.detail}") from exc
    results = _predict(images, ctx)
    return _json(
        {
            "predictions": results,
            "count": len(results),
            "model_version": ctx.model.version,
            "request_id": ctx.request_id,
        }
    )
