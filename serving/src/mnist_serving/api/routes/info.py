"""Model card and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mnist_serving.api.deps import HolderDep
from mnist_serving.api.schemas import ErrorBody

router = APIRouter(tags=["model"])


@router.get(
    "/model-info",
    responses={503: {"model": ErrorBody, "description": "No model loaded."}},
)
async def model_info(holder: HolderDep) -> dict[str, Any]:
    """The model card plus the served version, its source and load time.

    `last_reload_error` is why the last reload failed (the served model is
    unchanged), or null.
    """
    return {**holder.require().info(), "last_reload_error": holder.last_reload_error}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text."}},
    tags=["operations"],
)
async def metrics() -> Response:
    """Prometheus metrics in the text exposition format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
