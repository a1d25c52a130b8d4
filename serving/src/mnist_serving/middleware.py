"""One pure-ASGI middleware: request id, body-size limit, load shedding, metrics.

Pure ASGI (not BaseHTTPMiddleware) keeps the per-request cost to microseconds.
Requests for the `direct_routes` it is given (the predict RequestRoutes) go
straight to their endpoint (api.request_route.run_route), not through the
router; everything else goes to the app.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Iterable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mnist_serving.api.request_route import direct_routes, run_route
from mnist_serving.metrics import IN_FLIGHT, LATENCY, REJECTED, REQUESTS

log = logging.getLogger(__name__)
PREDICT_PREFIX = "/predict"
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class BodyTooLargeError(HTTPException):
    """Raised from `receive` once the body passes the limit (an HTTP 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"request body is above the limit of {limit} bytes; "
            "send a smaller image or fewer images",
            headers={"Connection": "close"},
        )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def request_id_of(scope: Scope) -> str:
    """The caller's X-Request-ID when it is sane, else a new one."""
    given = _header(scope, b"x-request-id")
    if given and _REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


def content_length_of(scope: Scope) -> int | None:
    """The declared body length, if any."""
    value = _header(scope, b"content-length")
    return int(value) if value and value.isdigit() else None


class _Exchange:
    """The `send` side of one request: adds headers and remembers the status."""

    def __init__(self, send: Send, request_id: str) -> None:
        self._send = send
        self._extra = [(b"x-request-id", request_id.encode()), *SECURITY_HEADERS]
        self.status = 500
        self.started = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.started = True
            message["headers"] = [*message.get("headers", []), *self._extra]
        await self._send(message)

    async def reply(
        self, code: int, detail: str, reason: str, headers: dict[str, str] | None = None
    ) -> None:
        """Answer {"detail": ...} without calling the app."""
        REJECTED.labels(reason).inc()
        body = json.dumps({"detail": detail}).encode()
        raw = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
        ]
        await self.send({"type": "http.response.start", "status": code, "headers": raw})
        await self.send({"type": "http.response.body", "body": body})


class ServingMiddleware:
    """Wraps every HTTP request of the app."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        max_concurrency: int,
        direct: Iterable[BaseRoute] = (),
    ) -> None:
        self.app = app
        self._direct = direct_routes(direct)
        self.max_body_bytes = max_body_bytes
        self.max_concurrency = max_concurrency
        self.in_flight = 0
        # Route templates only ("unmatched" for 404s), so these stay small.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
        scope.setdefault("state", {}).update(request_id=request_id, started=started)
        exchange = _Exchange(send, request_id)
        try:
            await self._handle(scope, receive, exchange)
        except Exception:
            log.exception("unhandled error in request %s", request_id)
            if not exchange.started:
                detail = f"internal error; quote request id {request_id}"
                await exchange.reply(500, detail, "internal_error")
        finally:
            label = getattr(scope.get("route"), "path", "unmatched")
            self._record(label, scope["method"], exchange.status, started)

    def _record(self, route: str, method: str, status: int, started: float) -> None:
        """Count the request and observe its latency (metric children cached)."""
        key = (route, method, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = REQUESTS.labels(route, method, str(status))
        counter.inc()
        histogram = self._histograms.get(route)
        if histogram is None:
            histogram = self._histograms[route] = LATENCY.labels(route)
        histogram.observe(time.perf_counter() - started)

    async def _handle(
        self, scope: Scope, receive: Receive, exchange: _Exchange
    ) -> None:
        is_predict = scope["path"].startswith(PREDICT_PREFIX)
        if is_predict and self.in_flight >= self.max_concurrency:
            detail = "server is at its concurrency limit; retry shortly"
            await exchange.reply(503, detail, "overloaded", {"Retry-After": "1"})
            return
        length = content_length_of(scope)
        if length is not None and length > self.max_body_bytes:
            detail = (
                f"request body is {length} bytes, above the limit of "
                f"{self.max_body_bytes} bytes; send a smaller image or fewer images"
            )
            await exchange.reply(413, detail, "body_too_large", {"Connection": "close"})
            return
        if not is_predict:
            await self.app(scope, self._limited(receive), exchange.send)
            return
        route = self._direct.get((scope["method"], scope["path"]))
        self.in_flight += 1
        IN_FLIGHT.inc()
        try:
            if route is None:
                await self.app(scope, self._limited(receive), exchange.send)
            else:
                await run_route(route, scope, self._limited(receive), exchange.send)
        finally:
            self.in_flight -= 1
            IN_FLIGHT.dec()

    def _limited(self, receive: Receive) -> Receive:
        """`receive` that raises 413 once more than max_body_bytes have arrived."""
        seen = 0
        limit = self.max_body_bytes

        async def wrapped() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    REJECTED.labels("body_too_large").inc()
                    raise BodyTooLargeError(limit)
            return message

        return wrapped
