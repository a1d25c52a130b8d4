"""Prediction endpoints: an uploaded image, a canvas drawing, or a batch."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
import numpy as np
from fastapi import APIRouter, File, Request, UploadFile

from mnist_serving.api.deps import ClientDep, ModelDep, SettingsDep
from mnist_serving.config import Settings
from mnist_serving.errors import InvalidInputError, ServingError
from mnist_serving.preprocessing import decode_base64_image, image_to_mnist, open_image
from mnist_serving.schemas import (
    ERROR_RESPONSES,
    BatchResponse,
    DrawingRequest,
    Prediction,
    PredictionResponse,
)
from mnist_serving.service import AuditContext, to_predictions

router = APIRouter(tags=["predict"], responses=ERROR_RESPONSES)


async def to_mnist(data: bytes, request: Request, settings: Settings) -> np.ndarray:
    """Preprocess inline when small (microseconds), in a worker thread when large."""
    image = open_image(data, settings.max_image_pixels)
    if image.width * image.height <= settings.inline_pixels:
        return image_to_mnist(image)
    limiter = request.app.state.big_image_limiter
    return await anyio.to_thread.run_sync(image_to_mnist, image, limiter=limiter)


def _respond(
    request: Request, probabilities: np.ndarray, settings: Settings, client: str
) -> tuple[list[dict[str, Any]], str]:
    state = request.state
    context = AuditContext(
        request_id=state.request_id,
        client_id=client,
        endpoint=request.url.path,
        started=state.started,
    )
    predictions = to_predictions(probabilities, settings, context)
    return predictions, state.request_id


@router.post("/predict", summary="Classify an uploaded PNG or JPEG")
async def predict(
    client: ClientDep,
    file: Annotated[
        UploadFile, File(description="PNG or JPEG, light-on-dark or dark-on-light.")
    ],
    model: ModelDep,
    settings: SettingsDep,
    request: Request,
) -> PredictionResponse:
    """Classify one image sent as multipart field `file`."""
    image = await to_mnist(await file.read(), request, settings)
    predictions, request_id = _respond(
        request, model.predict(image[None]), settings, client
    )
    return PredictionResponse(
        **predictions[0],
        model_version=model.version,
        request_id=request_id,
    )


@router.post("/predict-drawing", summary="Classify a canvas drawing")
async def predict_drawing(
    client: ClientDep,
    body: DrawingRequest,
    model: ModelDep,
    settings: SettingsDep,
    request: Request,
) -> PredictionResponse:
    """Classify a data URL or bare base64 PNG, as the drawing page sends it."""
    data = decode_base64_image(body.image, settings.max_base64_chars)
    image = await to_mnist(data, request, settings)
    predictions, request_id = _respond(
        request, model.predict(image[None]), settings, client
    )
    return PredictionResponse(
        **predictions[0],
        model_version=model.version,
        request_id=request_id,
    )


@router.post("/predict-batch", summary="Classify several images in one model call")
async def predict_batch(
    client: ClientDep,
    files: Annotated[
        list[UploadFile], File(description="PNG or JPEG images, repeated field.")
    ],
    model: ModelDep,
    settings: SettingsDep,
    request: Request,
) -> BatchResponse:
    """Classify up to MAX_BATCH_IMAGES images sent as repeated multipart `files`."""
    if len(files) > settings.max_batch_images:
        raise InvalidInputError(
            f"batch has {len(files)} images, above the limit of "
            f"{settings.max_batch_images}; split it into smaller batches"
        )
    images = np.empty((len(files), 28, 28), dtype=np.float32)
    for index, upload in enumerate(files):
        try:
            images[index] = await to_mnist(await upload.read(), request, settings)
        except ServingError as exc:
            name = upload.filename or "unnamed"
            raise type(exc)(f"image {index} ({name}): {exc.detail}") from exc
    predictions, request_id = _respond(request, model.predict(images), settings, client)
    return BatchResponse(
        predictions=[Prediction(**item) for item in predictions],
        count=len(predictions),
        model_version=model.version,
        request_id=request_id,
    )
