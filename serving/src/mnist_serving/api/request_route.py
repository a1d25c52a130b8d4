"""A FastAPI route that is documented as usual but runs its endpoint on the Request.

FastAPI builds a route's OpenAPI operation from what the route declares (body
model, security dependencies, responses, openapi_extra) and, per request, solves
those dependencies and validates the inputs before it calls the endpoint. The
predict endpoints check the caller, parse and validate their input themselves
(they must anyway: an image is only valid once decoded), so that per-request
work, ~50 us at thousands of requests a second, bought nothing. A RequestRoute
keeps the documentation and calls `endpoint(request)` directly; Starlette's
exception handling (ServingError and validation errors as {"detail": ...})
still applies.

`run_route` goes one step further for the middleware: it calls a RequestRoute
without Starlette's exception and exit-stack middlewares and router (another
~55 us a request), handling exceptions with the app's own handlers as they do.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
M = TypeVar("M", bound=BaseModel)


class RequestRoute(APIRoute):
    """An APIRoute whose endpoint takes the bare Request and returns a Response.

    Its `dependencies` and body declarations document the operation only; they
    are never resolved, so the endpoint must check them (see `json_body`).
    """

    def get_route_handler(self) -> Handler:
        """The endpoint itself: no dependency solving, no parameter validation."""
        handler: Handler = self.endpoint
        return handler


def direct_routes(routes: Iterable[BaseRoute]) -> dict[tuple[str, str], RequestRoute]:
    """(method, path) of each RequestRoute among `routes`, for `run_route`."""
    return {
        (method, route.path): route
        for route in routes
        if isinstance(route, RequestRoute)
        for method in route.methods
    }


def _exception_handler(app: Any, exc: Exception) -> Callable[..., Any] | None:
    """The app's handler for `exc`, looked up along its MRO as Starlette does."""
    handlers: dict[Any, Callable[..., Any]] = app.exception_handlers
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None


async def run_route(
    route: RequestRoute, scope: Scope, receive: Receive, send: Send
) -> None:
    """Answer one request with `route`'s endpoint, errors by the app's handlers.

    What the router and Starlette's ExceptionMiddleware would do for this route,
    without matching every route and wrapping the call in three more layers.
    Exceptions without a handler propagate (the middleware answers 500).
    """
    scope["route"] = route
    scope["endpoint"] = route.endpoint
    request = Request(scope, receive, send)
    try:
        response = await route.endpoint(request)
    except Exception as exc:
        handler = _exception_handler(scope["app"], exc)
        if handler is None:
            raise
        if inspect.iscoroutinefunction(handler):
            response = await handler(request, exc)
        else:
            response = await run_in_threadpool(handler, request, exc)
    await response(scope, receive, send)


def documents_body(model: type[BaseModel]) -> Any:
    """A dependency that declares `model` as the JSON body, for OpenAPI only.

    RequestRoute never runs it; the endpoint parses with `json_body(request, model)`.
    """

    async def body(**_: Any) -> None:
        """Never called: FastAPI reads the signature below to document the body."""

    parameter = inspect.Parameter(
        "body", inspect.Parameter.KEYWORD_ONLY, annotation=model
    )
    body.__signature__ = inspect.Signature([parameter])  # type: ignore[attr-defined]
    return Depends(body)


def _is_json(content_type: str | None) -> bool:
    """application/json or application/*+json, as FastAPI decides it."""
    if not content_type:
        return False
    kind = content_type.split(";", 1)[0].strip().lower()
    maintype, _, subtype = kind.partition("/")
    is_json = subtype == "json" or subtype.endswith("+json")
    return maintype == "application" and is_json


async def json_body(request: Request, model: type[M]) -> M:
    """The JSON body validated as `model`, failing as FastAPI would (same 422 errors).

    An empty body is "missing", a body that is not declared JSON is validated as
    bytes (and refused), bad JSON is "json_invalid" at its position.
    """
    raw = await request.body()
    if not raw:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required"}
        raise RequestValidationError([{**missing, "input": None}])
    data: Any = raw
    if _is_json(request.headers.get("content-type")):
        try:
            data = json.loads(raw)
        except UnicodeDecodeError as exc:
            raise HTTPException(
                400, "request body is not UTF-8 JSON; send {'image': '<base64>'}"
            ) from exc
        except ValueError as exc:  # json.JSONDecodeError
            pos = getattr(exc, "pos", 0)
            error = {"type": "json_invalid", "loc": ("body", pos)}
            raise RequestValidationError(
                [{**error, "msg": "JSON decode error", "input": {}}]
            ) from exc
    try:
        # from_attributes as FastAPI validates bodies (same error types).
        return model.model_validate(data, from_attributes=True)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in errors]
        ) from exc
