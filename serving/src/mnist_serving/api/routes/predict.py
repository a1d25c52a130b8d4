"""Prediction endpoints: an uploaded image, a canvas drawing, or a batch."""

from __future__ import annotations

import json
from typing import Any

import anyio.to_thread
import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

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
IMAGE_PART = {"type": "string", "format": "binary"}


def multipart_body(field: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    """OpenAPI for a multipart body that the endpoint parses itself.

    Parsing the form in the endpoint skips FastAPI's per-request parameter
    validation of UploadFile fields (~0.1 ms a request at thousands a second).
    """
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": [field],
                        "properties": {field: {**schema, "description": text}},
                    }
                }
            },
        }
    }


async def read_parts(
    request: Request, field: str, limit: int
) -> list[tuple[str, bytes]]:
    """(filename, bytes) of each file in multipart `field`; 422 when there is none."""
    try:
        form = await request.form(max_files=limit + 1, max_fields=limit + 10)
    except HTTPException as exc:
        if "Too many files" in str(exc.detail):
            raise InvalidInputError(
                f"batch has more than {limit} images, above the limit of {limit}; "
                "split it into smaller batches"
            ) from exc
        raise
    try:
        uploads = [part for part in form.getlist(field) if isinstance(part, UploadFile)]
        if not uploads:
            raise InvalidInputError(
                f"multipart field {field!r} with a PNG or JPEG file is required"
            )
        return [(part.filename or "unnamed", await part.read()) for part in uploads]
    finally:
        await form.close()


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


async def _predict(
    images: np.ndarray, request: Request, ctx: PredictContext
) -> list[dict[str, Any]]:
    """One model call: inline for one image, in a worker thread for a batch."""
    if len(images) == 1:
        probabilities = ctx.model.predict(images)
    else:
        limiter = request.app.state.batch_limiter
        probabilities = await anyio.to_thread.run_sync(
            ctx.model.predict, images, limiter=limiter
        )
    audit = AuditContext(ctx.request_id, ctx.client_id, ctx.endpoint, ctx.started)
    return to_predictions(probabilities, ctx.settings, audit)


async def _classify_one(data: bytes, request: Request, ctx: PredictContext) -> Response:
    """Preprocess one image, classify it and answer with its prediction."""
    image = await to_mnist(data, request, ctx)
    (result,) = await _predict(image[None], request, ctx)
    result.update(model_version=ctx.model.version, request_id=ctx.request_id)
    return _json(result)


@router.post(
    "/predict",
    summary="Classify an uploaded PNG or JPEG",
    response_model=PredictionResponse,
    openapi_extra=multipart_body(
        "file", IMAGE_PART, "PNG or JPEG, light-on-dark or dark-on-light."
    ),
)
async def predict(ctx: PredictDep, request: Request) -> Response:
    """Classify one image sent as multipart field `file`."""
    (_, data), *_ = await read_parts(request, "file", 1)
    return await _classify_one(data, request, ctx)


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
    return await _classify_one(data, request, ctx)


@router.post(
    "/predict-batch",
    summary="Classify several images in one model call",
    response_model=BatchResponse,
    openapi_extra=multipart_body(
        "files",
        {"type": "array", "items": IMAGE_PART},
        "PNG or JPEG images, the field repeated once per image.",
    ),
)
async def predict_batch(ctx: PredictDep, request: Request) -> Response:
    """Classify up to MAX_BATCH_IMAGES images sent as repeated multipart `files`."""
    limit = ctx.settings.max_batch_images
    files = await read_parts(request, "files", limit)
    if len(files) > limit:
        raise InvalidInputError(
            f"batch has {len(files)} images, above the limit of {limit}; "
            "split it into smaller batches"
        )
    images = np.empty((len(files), 28, 28), dtype=np.float32)
    for index, (name, data) in enumerate(files):
        try:
            images[index] = await to_mnist(data, request, ctx)
        except ServingError as exc:
            raise type(exc)(f"image {index} ({name}): {exc.detail}") from exc
    results = await _predict(images, request, ctx)
    return _json(
        {
            "predictions": results,
            "count": len(results),
            "model_version": ctx.model.version,
            "request_id": ctx.request_id,
        }
    )
