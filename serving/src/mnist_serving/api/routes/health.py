"""Liveness, readiness and the combined health status."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from mnist_serving import __version__
from mnist_serving.api.deps import HolderDep
from mnist_serving.api.schemas import (
    ErrorBody,
    HealthResponse,
    LiveResponse,
    ReadyResponse,
)
from mnist_serving.store.buffer import FeedbackStore

router = APIRouter(prefix="/health", tags=["health"])
NOT_READY = {503: {"model": ErrorBody, "description": "Not ready: a reason code."}}


@router.get("", responses={503: {"model": HealthResponse}})
async def health(request: Request, holder: HolderDep) -> HealthResponse:
    """Process and model status in one answer; 503 while not ready.

    Public, so it says only a reason code; the log and /model-info (behind the
    API key) say why. The feedback store's state is reported but never makes
    this 503: predictions do not need it.
    """
    model = holder.model
    store: FeedbackStore = request.app.state.store
    reason = holder.ready_reason()
    body = HealthResponse(
        status="ok" if reason is None else "unavailable",
        model_loaded=model is not None,
        model_version=model.version if model else None,
        reason=reason,
        service_version=__version__,
        uptime_seconds=round(time.monotonic() - request.app.state.started, 3),
        last_reload_failed=holder.last_reload_error is not None,
        feedback_store=store.state,
        feedback_records_lost=store.lost,
    )
    if reason is not None:
        return JSONResponse(body.model_dump(), status_code=503)  # type: ignore[return-value]
    return body


@router.get("/live")
async def live() -> LiveResponse:
    """The process is up and its event loop answers."""
    return LiveResponse(status="alive")


@router.get("/ready", responses=NOT_READY)
async def ready(holder: HolderDep) -> ReadyResponse:
    """200 once a verified model is loaded; 503 with a reason code otherwise.

    The feedback store plays no part: when a database shared by every replica
    is down, failing readiness would take all of them out of the load balancer
    and stop predictions, which do not need it.

    Turns 503 ("shutting_down") as soon as SIGTERM arrives, while requests are
    still served for SHUTDOWN_DELAY_SECONDS.
    """
    reason = holder.ready_reason()
    if reason is not None or holder.model is None:
        return JSONResponse(  # type: ignore[return-value]
            {"detail": f"not ready: {reason}"}, status_code=503
        )
    return ReadyResponse(status="ready", model_version=holder.model.version)
