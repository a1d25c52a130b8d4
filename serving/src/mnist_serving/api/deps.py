"""FastAPI dependencies as Annotated aliases: settings, model, caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from mnist_serving.config import Settings
from mnist_serving.model import DigitModel
from mnist_serving.security import RateLimiter, check_api_key
from mnist_serving.state import ModelHolder

api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="Required on predict endpoints when the server has API_KEYS set.",
)


async def app_settings(request: Request) -> Settings:
    """The app's settings (resolved once by create_app from get_settings).

    An async dependency: a plain `def` one would cost a thread-pool hop per request.
    """
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(app_settings)]


async def get_holder(request: Request) -> ModelHolder:
    """The app's model holder."""
    holder: ModelHolder = request.app.state.holder
    return holder


HolderDep = Annotated[ModelHolder, Depends(get_holder)]


async def get_model(holder: HolderDep) -> DigitModel:
    """The loaded model, or 503 with the reason."""
    return holder.require()


ModelDep = Annotated[DigitModel, Depends(get_model)]


async def get_client(
    request: Request,
    settings: SettingsDep,
    api_key: Annotated[str | None, Security(api_key_header)] = None,
) -> str:
    """The caller's id (key id or address) after the key and rate-limit checks."""
    client_id = check_api_key(api_key, settings.api_keys)
    if client_id is None:
        client_id = request.client.host if request.client else "unknown"
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.check(client_id)
    return client_id


ClientDep = Annotated[str, Depends(get_client)]
