"""The ASGI middleware's load shedding."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from mnist_serving.core.middleware import ServingMiddleware


def blocking_app(release: asyncio.Event):
    """An ASGI app whose predict requests wait until `release` is set."""

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await receive()
        if scope["path"].startswith("/predict"):
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


@pytest.mark.anyio
async def test_requests_past_the_concurrency_limit_get_503_then_recover():
    release = asyncio.Event()
    app = ServingMiddleware(blocking_app(release), max_concurrency=2)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        held = [asyncio.create_task(client.post("/predict")) for _ in range(2)]
        while app.in_flight < 2:
            await asyncio.sleep(0.001)
        shed = await client.post("/predict")
        health = await client.get("/health/live")  # not a predict path: not shed
        release.set()
        done = await asyncio.gather(*held)
        after = await client.post("/predict")
    assert shed.status_code == 503
    assert shed.headers["retry-after"] == "1"
    assert shed.json() == {
        "detail": "server is at its concurrency limit; retry shortly"
    }
    assert health.status_code == 200
    assert [r.status_code for r in done] == [200, 200]
    assert after.status_code == 200
    assert app.in_flight == 0


@pytest.fixture
def anyio_backend():
    return "asyncio"
