"""The ASGI middleware's load shedding and the rate limiter's token bucket."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from mnist_serving.errors import RateLimitedError
from mnist_serving.middleware import ServingMiddleware
from mnist_serving.security import RateLimiter, check_api_key, client_id_for_key


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
    app = ServingMiddleware(
        blocking_app(release), max_body_bytes=1024, max_concurrency=2
    )
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


def test_token_bucket_refills_over_time():
    limiter = RateLimiter(per_minute=60, burst=2)
    limiter.check("a", now=0.0)
    limiter.check("a", now=0.0)
    with pytest.raises(RateLimitedError) as info:
        limiter.check("a", now=0.5)
    assert info.value.headers == {"Retry-After": "1"}
    limiter.check("a", now=1.6)  # one token back after a second
    limiter.check("b", now=1.6)  # other clients have their own bucket


def test_rate_limit_zero_is_off():
    limiter = RateLimiter(per_minute=0, burst=1)
    for _ in range(1000):
        limiter.check("a")


def test_key_ids_do_not_reveal_keys():
    assert check_api_key("s3cret", ["other", "s3cret"]) == client_id_for_key("s3cret")
    assert "s3cret" not in client_id_for_key("s3cret")
    assert check_api_key(None, []) is None
