"""Prediction endpoints: an uploaded image, a canvas drawing, or a batch."""

from __future__ import annotations

import json
from typing import Any

import anyio.to_thread
import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from mnist_serving.api.deps import API_KEY, PredictContext, predict_context
from mnist_serving.api.request_route import RequestRoute, documents_body, json_body
from mnist_serving.batch_preprocessing import (
    MAX_VECTOR_PIXELS,
    BlankImageError,
    grays_to_mnist,
)
from mnist_serving.errors import InvalidInputError, ServingError
from mnist_serving.gray_png import gray_png
from mnist_serving.multipart import (
    FilePart,
    MultipartError,
    TooManyFilesError,
    boundary_of,
    file_parts,
)
from mnist_serving.preprocessing import (
    decode_base64_image,
    gray_to_mnist,
    image_to_mnist,
    open_image,
    small_png_to_mnist,
)
from mnist_serving.schemas import (
    ERROR_RESPONSES,
    BatchResponse,
    DrawingRequest,
    PredictionResponse,
)
from mnist_serving.service import AuditContext, to_predictions

# RequestRoute: FastAPI documents each endpoint (API key, body, responses) but
# calls it with the bare Request; each checks the caller and parses its input.
router = APIRouter(
    tags=["predict"],
    responses=ERROR_RESPONSES,
    dependencies=[API_KEY],
    route_class=RequestRoute,
)
IMAGE_PART = {"type": "string", "format": "binary"}


def multipart_body(field: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    """OpenAPI for a multipart body that the endpoint parses itself."""
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


async def read_files(request: Request, field: str, limit: int) -> list[FilePart]:
    """The files of multipart `field`; reading stops after limit + 1 files.

    422 when the field has no file (or the body is not multipart), 400 when the
    multipart body is malformed.
    """
    try:
        boundary = boundary_of(request.headers.get("content-type"))
        parts = []
        if boundary is not None:
            body = await request.body()
            parts = file_parts(body, boundary, limit + 1, max_fields=limit + 10)
    except TooManyFilesError as exc:
        raise InvalidInputError(
            f"batch has more than {limit} images, above the limit of {limit}; "
            "split it into smaller batches"
        ) from exc
    except MultipartError as exc:
        raise HTTPException(400, str(exc)) from exc
    files = [part for part in parts if part.field == field]
    if not files:
        raise InvalidInputError(
            f"multipart field {field!r} with a PNG or JPEG file is required"
        )
    return files


def inline_png_pixels(ctx: PredictContext) -> int:
    """Largest plain gray PNG (in pixels) decoded inline by the fast path."""
    return min(ctx.settings.inline_pixels, ctx.settings.max_image_pixels)


async def to_mnist(data: bytes, request: Request, ctx: PredictContext) -> np.ndarray:
    """Preprocess inline when small (microseconds), in a worker thread when large."""
    settings = ctx.settings
    field = small_png_to_mnist(data, inline_png_pixels(ctx))
    if field is not None:
        return field
    image = open_image(data, settings.max_image_pixels)
    if image.width * image.height <= settings.inline_pixels:
        return image_to_mnist(image)
    limiter = request.app.state.big_image_limiter
    return await anyio.to_thread.run_sync(image_to_mnist, image, limiter=limiter)


def _image_error(exc: ServingError, index: int, part: FilePart) -> ServingError:
    """The same error, saying which image of the batch it is about."""
    return type(exc)(f"image {index} ({part.filename}): {exc.detail}")


async def batch_to_mnist(
    files: list[FilePart], request: Request, ctx: PredictContext
) -> np.ndarray:
    """(N, 28, 28) model input; errors name the image's index and filename.

    A batch of small plain gray PNGs of one size (the usual case) is preprocessed
    vectorised (grays_to_mnist, ~14 us an image instead of ~25); any other
    batch image by image, as single images are (large ones in a worker thread).
    """
    limit = min(inline_png_pixels(ctx), MAX_VECTOR_PIXELS)
    pixels = [gray_png(part.data, limit) for part in files]
    shapes = {None if image is None else image.shape for image in pixels}
    if len(shapes) == 1 and None not in shapes:
        try:
            return grays_to_mnist(np.stack(pixels).astype(np.float32))
        except BlankImageError as exc:
            blank = InvalidInputError(exc.detail)
            raise _image_error(blank, exc.index, files[exc.index]) from exc
    images = np.empty((len(files), 28, 28), dtype=np.float32)
    for index, (part, gray) in enumerate(zip(files, pixels, strict=True)):
        try:
            if gray is None:
                images[index] = await to_mnist(part.data, request, ctx)
            else:
                images[index] = gray_to_mnist(gray.astype(np.float32))
        except ServingError as exc:
            raise _image_error(exc, index, part) from exc
    return images


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
async def predict(request: Request) -> Response:
    """Classify one image sent as multipart field `file`."""
    ctx = predict_context(request)
    first, *_ = await read_files(request, "file", 1)
    return await _classify_one(first.data, request, ctx)


@router.post(
    "/predict-drawing",
    summary="Classify a canvas drawing",
    response_model=PredictionResponse,
    dependencies=[documents_body(DrawingRequest)],
)
async def predict_drawing(request: Request) -> Response:
    """Classify a data URL or bare base64 PNG, as the drawing page sends it."""
    ctx = predict_context(request)
    body = await json_body(request, DrawingRequest)
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
async def predict_batch(request: Request) -> Response:
    """Classify up to MAX_BATCH_IMAGES images sent as repeated multipart `files`."""
    ctx = predict_context(request)
    limit = ctx.settings.max_batch_images
    files = await read_files(request, "files", limit)
    if len(files) > limit:
        raise InvalidInputError(
            f"batch has {len(files)} images, above the limit of {limit}; "
            "split it into smaller batches"
        )
    images = await batch_to_mnist(files, request, ctx)
    results = await _predict(images, request, ctx)
    return _json(
        {
            "predictions": results,
            "count": len(results),
            "model_version": ctx.model.version,
            "request_id": ctx.request_id,
        }
    )
