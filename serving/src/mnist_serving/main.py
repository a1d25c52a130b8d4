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
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.requests import ClientDisconnect

from mnist_serving import __version__
from mnist_serving.api import openapi
from mnist_serving.api.routes import (
    admin,
    feedback,
    health,
    info,
    page,
    predict,
    review,
)
from mnist_serving.core.config import Settings, get_settings
from mnist_serving.core.errors import ServingError
from mnist_serving.core.metrics import DRIFT
from mnist_serving.core.middleware import ServingMiddleware
from mnist_serving.core.security import RateLimiter
from mnist_serving.core.workers import ImageWorkers
from mnist_serving.model.holder import ModelHolder
from mnist_serving.model.reload import ModelReloader
from mnist_serving.monitoring.drift import DriftTracker
from mnist_serving.store.buffer import FeedbackStore

log = logging.getLogger(__name__)
MAX_FORM_FIELDS = 16  # plain (non-file) multipart fields; the API defines none
MAX_ERRORS = 20  # validation problems listed in a 422; the rest are counted
CLIENT_CLOSED = 499


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the model once at start; the process stays up if that fails.

    With MODEL_POLL_SECONDS > 0 a task reloads new model versions while serving.
    The feedback store migrates its schema and starts writing in the background;
    at shutdown it writes what is still queued.
    """
    settings: Settings = app.state.settings
    app.state.started = time.monotonic()
    app.state.rate_limiter = RateLimiter(settings)
    app.state.image_workers = workers = ImageWorkers()
    workers.prepare()
    app.state.batch_limiter = anyio.CapacityLimiter(1)  # one batch interpreter
    holder: ModelHolder = app.state.holder
    holder.shutting_down = False
    if holder.model is None:
        holder.load(settings)
    app.state.reloader = reloader = ModelReloader(holder, settings)
    app.state.store = store = FeedbackStore(settings)
    await store.start()
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
        await store.stop()  # writes the queued records
        workers.close()


async def serving_error(_: Request, exc: Exception) -> JSONResponse:
    """A ServingError as {"detail": ...} with its status and headers."""
    assert isinstance(exc, ServingError)  # noqa: S101 - registered for this type
    return JSONResponse(
        {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
    )


async def client_gone(request: Request, _: Exception) -> Response:
    """The client closed the connection mid-request: 499 (nginx's code), at INFO.

    Not a server error: it must neither log a traceback nor count as a 5xx.
    """
    log.info(
        "client closed the connection before its request was read",
        extra={"event": "client_closed_request", "path": request.url.path},
    )
    return Response(status_code=CLIENT_CLOSED)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's HTTP errors as {"detail": ...}, the framework's terse ones reworded.

    The body limit (413), the multipart file limit (400) and the multipart
    parser's other errors (400) of the framework do not say the fix.
    """
    assert isinstance(exc, HTTPException)  # noqa: S101
    if isinstance(exc.__cause__, ClientDisconnect):  # FastAPI's body parsing
        return await client_gone(request, exc)
    status, detail = exc.status_code, exc.detail
    settings: Settings = request.app.state.settings
    if status == 413:  # noqa: PLR2004
        limit = request.scope.get(MAX_BODY_SIZE_SCOPE_KEY, settings.max_body_bytes)
        detail = (
            f"request body is above the limit of {limit} bytes for {request.url.path}; "
            "send a smaller image or fewer images"
        )
    elif status == 400 and detail == "There was an error parsing the body":  # noqa: PLR2004
        detail = (
            "request body cannot be parsed as its Content-Type says; send UTF-8 JSON "
            "for JSON endpoints, a well-formed multipart/form-data body for uploads"
        )
    elif status == 400 and str(detail).startswith("Too many files"):  # noqa: PLR2004
        status = 422
        limit = settings.max_batch_images
        detail = (
            f"batch has more than {limit} images, above the limit of {limit}; "
            "split it into smaller batches"
        )
    elif status == 400 and isinstance(exc.__context__, MultiPartException):  # noqa: PLR2004
        detail = (
            f"multipart body cannot be read: {detail} Send multipart/form-data as "
            "an HTTP client builds it, with the image in field 'file' (curl -F "
            "file=@digit.png), or the image itself as image/png or image/jpeg"
        )
    return JSONResponse({"detail": detail}, status_code=status, headers=exc.headers)


async def validation_error(_: Request, exc: Exception) -> JSONResponse:
    """422 listing the first problems and how many more, never echoing the input.

    A body with thousands of bad keys must not get a response thousands of
    times larger.
    """
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errors = exc.errors()
    problems: list[dict[str, Any]] = [
        {
            "loc": list(err.get("loc", ())),
            "msg": err.get("msg"),
            "type": err.get("type"),
        }
        for err in errors[:MAX_ERRORS]
    ]
    if len(errors) > MAX_ERRORS:
        problems.append(
            {
                "loc": ["body"],
                "msg": f"{len(errors) - MAX_ERRORS} more problems not listed",
                "type": "too_many_errors",
            }
        )
    return JSONResponse({"detail": problems}, status_code=422)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app; `settings` (tests) win over the environment's get_settings()."""
    effective = settings or get_settings()
    app = FastAPI(
        title="MNIST digit classifier",
        version=__version__,
        description="Classifies handwritten digits with the exported LiteRT model.",
        lifespan=lifespan,
        generate_unique_id_function=openapi.operation_id,
        redirect_slashes=False,  # its redirect would echo the Host header
    )
    openapi.install(app)
    app.state.settings = effective
    app.state.holder = ModelHolder()
    app.state.drift = DriftTracker(app.state.holder, effective)
    DRIFT.source = app.state.drift.collect  # one app per process serves
    app.add_exception_handler(ServingError, serving_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.include_router(page.router)
    app.include_router(
        predict.router,
        max_body_size=effective.max_body_bytes,
        form_limits={
            "max_files": effective.max_batch_images + 1,
            "max_fields": MAX_FORM_FIELDS,
        },
    )
    app.include_router(predict.json_router, max_body_size=effective.max_json_bytes)
    app.include_router(feedback.router, max_body_size=feedback.MAX_BODY_BYTES)
    for router in (health.router, info.router, admin.router, review.router):
        app.include_router(router)
    if effective.metrics_port is None:
        app.include_router(info.metrics_router)
    static = files("mnist_serving") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.add_middleware(ServingMiddleware, max_concurrency=effective.max_concurrency)
    return app
