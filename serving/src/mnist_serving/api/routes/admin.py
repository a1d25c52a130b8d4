"""Operator endpoints behind ADMIN_TOKEN: reload the model without a restart."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mnist_serving.api.schemas import ErrorBody, ReloadResponse
from mnist_serving.core.config import Settings
from mnist_serving.core.errors import AdminDisabledError, UnauthorizedError
from mnist_serving.model.reload import ModelReloader

bearer = HTTPBearer(
    auto_error=False,
    description="ADMIN_TOKEN of the server, as `Authorization: Bearer <token>`.",
)
CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> None:
    """403 when admin is off, 401 unless the bearer token is ADMIN_TOKEN."""
    settings: Settings = request.app.state.settings
    if settings.admin_token is None:
        where = (
            f"ADMIN_TOKEN_FILE {settings.admin_token_file} does not exist"
            if settings.admin_token_file
            else "ADMIN_TOKEN is not set"
        )
        raise AdminDisabledError(
            f"admin endpoints are off: {where}; configure a token to enable them"
        )
    if credentials is None:
        raise UnauthorizedError(
            "missing admin token: send Authorization: Bearer <ADMIN_TOKEN>",
            headers=CHALLENGE,
        )
    expected = settings.admin_token.get_secret_value().encode()
    if not hmac.compare_digest(credentials.credentials.encode(), expected):
        raise UnauthorizedError(
            "invalid admin token: check the Authorization header against ADMIN_TOKEN",
            headers=CHALLENGE,
        )


router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses={
        401: {"model": ErrorBody, "description": "Missing or wrong admin token."},
        403: {"model": ErrorBody, "description": "Admin endpoints are off."},
    },
)


@router.post(
    "/reload",
    responses={
        409: {
            "model": ErrorBody,
            "description": "The new model is missing or does not verify; the "
            "previous one keeps serving.",
        }
    },
)
async def reload_model(request: Request) -> ReloadResponse:
    """Load the newest model (MODEL_URI or the catalog) and serve it if it is new."""
    reloader: ModelReloader = request.app.state.reloader
    result = await reloader.reload("admin")
    return ReloadResponse(
        status=result.status,
        model_version=result.model_version,
        previous_version=result.previous_version,
        sha256=result.sha256,
    )
