"""FastAPI dependencies as Annotated aliases, and the predict endpoints' caller check.

All are `async def`: a plain `def` dependency costs a thread-pool hop per request.
Settings live on `app.state.settings` (set once by create_app from get_settings).
The predict endpoints are RequestRoutes (see api/request_route.py): they declare
`API_KEY` for OpenAPI and call `predict_context` themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from mnist_serving.config import Settings
from mnist_serving.model import DigitModel
from mnist_serving.security import check_api_key
from mnist_serving.state import ModelHolder

api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="Required on predict endpoints when the server has API_KEYS set.",
)


async def get_holder(request: Request) -> ModelHolder:
    """The app's model holder."""
    holder: ModelHolder = request.app.state.holder
    return holder


HolderDep = Annotated[ModelHolder, Depends(get_holder)]


async def get_model(holder: HolderDep) -> DigitModel:
    """The loaded model, or 503 with the reason."""
    return holder.require()


ModelDep = Annotated[DigitModel, Depends(get_model)]


API_KEY = Security(api_key_header)


@dataclass(frozen=True)
class PredictContext:
    """Everything a predict endpoint needs about the caller, the model and settings."""

    settings: Settings
    model: DigitModel
    client_id: str
    request_id: str
    started: float
    endpoint: str


def predict_context(request: Request) -> PredictContext:
    """Check the X-API-Key and the rate limit, then hand over the model and settings.

    A plain call, not a FastAPI dependency: resolving dependencies costs tens of
    microseconds a request, and the predict endpoints serve thousands a second.
    """
    state = request.app.state
    settings: Settings = state.settings
    client_id = check_api_key(request.headers.get("x-api-key"), settings.api_keys)
    if client_id is None:
        client_id = request.client.host if request.client else "unknown"
    state.rate_limiter.check(client_id)
    holder: ModelHolder = state.holder
    scope = request.scope
    scope_state = scope["state"]
    return PredictContext(
        settings=settings,
        model=holder.require(),
        client_id=client_id,
        request_id=scope_state["request_id"],
        started=scope_state["started"],
        endpoint=scope["path"],
    )
