"""Build the FastAPI app: routes, middleware, error handlers and the model lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from importlib.resources import files
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from mnist_serving import __version__
from mnist_serving.api import openapi
from mnist_serving.api.routes import admin, health, info, page, predict
from mnist_serving.config import Settings, get_settings
from mnist_serving.errors import ServingError
from mnist_serving.middleware import ServingMiddleware
from mnist_serving.reload import ModelReloader
from mnist_serving.security import RateLimiter
from mnist_serving.state import ModelHolder

log = logging.getLogger(__name__)
BIG_IMAGE_THREADS = 2


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the model once at start; the process stays up if that fails.

    With MODEL_POLL_SECONDS > 0 a task reloads new model versions while serving.
    """
    settings: Settings = app.state.settings
    app.state.started = time.monotonic()
    app.state.rate_limiter = RateLimiter(
        settings.rate_limit_per_minute, settings.rate_limit_burst
    )
    app.state.big_image_limiter = anyio.CapacityLimiter(BIG_IMAGE_THREADS)
    app.state.batch_limiter = anyio.CapacityLimiter(1)  # one batch interpreter
    holder: ModelHolder = app.state.holder
    holder.shutting_down = False
    if holder.model is None:
        holder.load(settings)
    app.state.reloader = reloader = ModelReloader(holder, settings)
    poller = None
    if settings.model_poll_seconds > 0:
        poller = asyncio.create_task(reloader.poll(settings.model_poll_seconds))
    try:
        yield
    finally:
        holder.shutting_down = True
        if poller is not None:
            poller.cancel()
            with suppress(asyncio.CancelledError):
                await poller


async def serving_error(_: Request, exc: Exception) -> JSONResponse:
    """A ServingError as {"detail": ...} with its status and headers."""
    assert isinstance(exc, ServingError)  # noqa: S101 - registered for this type
    return JSONResponse(
        {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
    )


async def validation_error(_: Request, exc: Exception) -> JSONResponse:
    """422 listing each problem, without echoing the (possibly huge) input."""
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    problems: list[dict[str, Any]] = [
        {
            "loc": list(err.get("loc", ())),
            "msg": err.get("msg"),
            "type": err.get("type"),
        }
        for err in exc.errors()
    ]
    return JSONResponse({"detail": problems}, status_code=422)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; `settings` (tests) win over the environment's get_settings()."""
    app = FastAPI(
        title="MNIST digit classifier",
        version=__version__,
        description="Classifies handwritten digits with the exported LiteRT model.",
        lifespan=lifespan,
        generate_unique_id_function=openapi.operation_id,
    )
    openapi.install(app)
    # Settings live on app.state, read by an async dependency. Not through
    # dependency_overrides: any override makes FastAPI rebuild every dependant
    # on every request (~0.5 ms).
    effective = settings or get_settings()
    app.state.settings = effective
    app.state.holder = ModelHolder()
    app.add_exception_handler(ServingError, serving_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    routers = (page.router, predict.router, health.router, info.router, admin.router)
    for router in routers:
        app.include_router(router)
    static = files("mnist_serving") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.add_middleware(
        ServingMiddleware,
        max_body_bytes=effective.max_body_bytes,
        max_concurrency=effective.max_concurrency,
        direct=predict.router.routes,
    )
    return app
