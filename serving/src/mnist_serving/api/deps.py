"""FastAPI dependencies as Annotated aliases: settings, the model and the caller.

Every predict route depends on `get_predict_context` (through its router), so
the API key and the rate limit are checked by the framework for any route
added there, and the OpenAPI document shows the key wherever it is enforced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from mnist_serving.core.config import Settings
from mnist_serving.core.security import (
    Caller,
    RateLimiter,
    client_id_for_key,
    forbidden,
    match_key,
    unauthorized,
)
from mnist_serving.model.holder import ModelHolder
from mnist_serving.model.runtime import DigitModel

PREDICT_ROLE = frozenset({"predict"})
api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="Required when the server has API keys set (API_KEYS).",
)


async def get_settings(request: Request) -> Settings:
    """The app's settings (read once by create_app)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_holder(request: Request) -> ModelHolder:
    """The app's model holder."""
    holder: ModelHolder = request.app.state.holder
    return holder


HolderDep = Annotated[ModelHolder, Depends(get_holder)]


async def check_caller(
    request: Request,
    settings: Settings,
    api_key: str | None,
    roles: frozenset[str] | None = None,
) -> Caller:
    """The caller's key id when keys are set (401 otherwise), else its address.

    Wrong keys count against the address's limit of failed checks (429 above it).
    With `roles`, a key that has none of them is refused (403 naming the role).
    """
    limiter: RateLimiter = request.app.state.rate_limiter
    source = request.client.host if request.client else "unknown"
    if not settings.api_keys:
        return Caller(source, authenticated=False)
    await limiter.check_auth_failures(source)
    key = match_key(api_key, settings.api_keys)
    if key is None:
        if api_key:
            await limiter.auth_failed(source)
        raise unauthorized(api_key)
    caller = Caller(client_id_for_key(key), True, settings.key_roles[key])
    if roles is not None and not roles & caller.roles:
        what = f"{request.method} {request.url.path}"
        raise forbidden(caller, roles, what)
    return caller


class RoleCaller:
    """A dependency: the caller, holding one of `roles` when keys are set, charged
    one rate-limit hit. The feedback and review routes each use one instance.
    """

    def __init__(self, *roles: str) -> None:
        """Accept keys with any of `roles`."""
        self.roles = frozenset(roles)

    async def __call__(
        self,
        request: Request,
        settings: SettingsDep,
        api_key: Annotated[str | None, Security(api_key_header)],
    ) -> Caller:
        """Check the key and its role, then charge the caller's rate limit."""
        caller = await check_caller(request, settings, api_key, self.roles)
        limiter: RateLimiter = request.app.state.rate_limiter
        await limiter.charge(caller)
        return caller


@dataclass(frozen=True)
class PredictContext:
    """What a predict endpoint works with: the request, caller, model and settings."""

    request: Request
    caller: Caller
    model: DigitModel
    settings: Settings
    limiter: RateLimiter
    request_id: str


async def get_predict_context(
    request: Request, api_key: Annotated[str | None, Security(api_key_header)]
) -> PredictContext:
    """Check the caller, charge its rate limit, and take the current model.

    One dependency rather than a chain of small ones: FastAPI solves and
    caches each dependency on every request, and this runs on every prediction.
    The model is taken last, so a refused caller learns nothing about it.
    """
    state = request.app.state
    settings: Settings = state.settings
    caller = await check_caller(request, settings, api_key, PREDICT_ROLE)
    limiter: RateLimiter = state.rate_limiter
    await limiter.charge(caller)
    holder: ModelHolder = state.holder
    return PredictContext(
        request=request,
        caller=caller,
        model=holder.require(),
        settings=settings,
        limiter=limiter,
        request_id=request.state.request_id,
    )


PredictDep = Annotated[PredictContext, Depends(get_predict_context)]
