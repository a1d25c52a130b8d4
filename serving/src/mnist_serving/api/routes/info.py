"""Model card and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Security
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mnist_serving.api.deps import HolderDep, SettingsDep, api_key_header, check_caller
from mnist_serving.api.schemas import ErrorBody
from mnist_serving.core.errors import ModelUnavailableError


async def require_key(
    request: Request,
    settings: SettingsDep,
    api_key: Annotated[str | None, Security(api_key_header)],
) -> None:
    """The API key, when keys are set: the card names runs, commits and paths."""
    await check_caller(request, settings, api_key)


router = APIRouter(tags=["model"])


@router.get(
    "/model-info",
    dependencies=[Depends(require_key)],
    responses={
        401: {"model": ErrorBody, "description": "Missing or invalid API key."},
        503: {"model": ErrorBody, "description": "No model loaded, and why."},
    },
)
async def model_info(holder: HolderDep, request: Request) -> dict[str, Any]:
    """The model card plus the served version, its source and load time.

    `last_reload_error` is why the last reload failed (the served model is
    unchanged), or null; `drift_monitoring` says whether drift is scored and,
    when not, why. Needs the API key when keys are set.
    """
    if holder.model is None:
        raise ModelUnavailableError(f"model not ready: {holder.reason}")
    return {
        **holder.model.info(),
        "last_reload_error": holder.last_reload_error,
        "drift_monitoring": request.app.state.drift.status(holder.model),
    }


metrics_router = APIRouter(tags=["operations"])


@metrics_router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text."}},
)
async def metrics() -> Response:
    """Prometheus metrics in the text exposition format.

    Served here only when METRICS_PORT is unset; otherwise on that port, which
    the Kubernetes Service does not expose.
    """
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
