"""One pure-ASGI middleware: request id, security headers, load shedding, metrics.

Pure ASGI (not BaseHTTPMiddleware): it wraps `send` only, so streaming works
and every request goes on to the app's router. Body-size limits are the
framework's own (FastAPI's `max_body_size`).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mnist_serving.core.metrics import IN_FLIGHT, LATENCY, REJECTED, REQUESTS

log = logging.getLogger(__name__)
PREDICT_PREFIX = "/predict"
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
HTTP_413 = 413
PLAIN_TEXT = b"text/plain; charset=utf-8"
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


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


class _Exchange:
    """The `send` side of one request: adds headers and remembers the status."""

    def __init__(self, send: Send, scope: Scope, request_id: str) -> None:
        self._send = send
        self._scope = scope
        self._extra = [(b"x-request-id", request_id.encode()), *SECURITY_HEADERS]
        self._body: bytes | None = None  # replaces the framework's plain-text 413
        self.status = 500
        self.started = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.started = True
            headers = message.get("headers", [])
            if self.status == HTTP_413 and (b"content-type", PLAIN_TEXT) in headers:
                headers = self._body_too_large()
            message["headers"] = [*headers, *self._extra]
        elif message["type"] == "http.response.body" and self._body is not None:
            message = {"type": "http.response.body", "body": self._body}
        await self._send(message)

    def _body_too_large(self) -> list[tuple[bytes, bytes]]:
        """JSON naming the limit instead of Starlette's bare "Content Too Large".

        The framework's body limit answers a declared Content-Length above it
        itself, in plain text, whatever the app's error handlers say.
        """
        REJECTED.labels("body_too_large").inc()
        limit = self._scope.get(MAX_BODY_SIZE_SCOPE_KEY)
        detail = (
            f"request body is above the limit of {limit} bytes for "
            f"{self._scope['path']}; send a smaller image or fewer images"
        )
        self._body = json.dumps({"detail": detail}).encode()
        return [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self._body)).encode()),
            (b"connection", b"close"),
        ]

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
        max_concurrency: int,
    ) -> None:
        self.app = app
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
        exchange = _Exchange(send, scope, request_id)
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
        if not is_predict:
            await self.app(scope, receive, exchange.send)
            return
        self.in_flight += 1
        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, exchange.send)
        finally:
            self.in_flight -= 1
            IN_FLIGHT.dec()
