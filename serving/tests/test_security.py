"""API keys and rate limits, as the framework's dependencies enforce them."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from pydantic import ValidationError

from conftest import KEY_A, KEY_B, make_settings, running
from mnist_serving.api.deps import get_predict_context
from mnist_serving.api.routes import predict
from mnist_serving.core.config import Settings
from mnist_serving.core.errors import RateLimitedError
from mnist_serving.core.security import Caller, RateLimiter, client_id_for_key


def predict_routes() -> list[APIRoute]:
    """Every route of the predict routers (the app includes them whole)."""
    routes = [*predict.router.routes, *predict.json_router.routes]
    return [route for route in routes if isinstance(route, APIRoute)]


def test_every_predict_route_depends_on_the_key_check():
    """A route added to the predict routers inherits the check: nothing to remember."""
    routes = predict_routes()
    assert {r.path for r in routes} >= {
        "/predict",
        "/predict-drawing",
        "/predict-batch",
    }
    for route in routes:
        calls = [d.call for d in route.dependant.dependencies]
        assert get_predict_context in calls, route.path


def test_every_predict_route_refuses_a_missing_key_and_documents_it(digit_png):
    with running(api_keys=KEY_A) as client:
        spec = client.get("/openapi.json").json()
        for route in predict_routes():
            response = client.post(route.path, content=digit_png)
            assert response.status_code == 401, route.path
            assert response.headers["www-authenticate"] == "ApiKey"
            operation = spec["paths"][route.path]["post"]
            assert operation["security"] == [{"APIKeyHeader": []}], route.path


def test_no_keys_means_open_and_anonymous(digit_png):
    with running() as client:
        response = client.post(
            "/predict", content=digit_png, headers={"content-type": "image/png"}
        )
    assert response.status_code == 200


def test_anonymous_callers_are_not_limited_by_default(digit_png):
    """Behind a proxy every caller shares one address: no default per-IP limit."""
    with running(rate_limit="2/minute") as client:
        statuses = {
            client.post(
                "/predict", content=digit_png, headers={"content-type": "image/png"}
            ).status_code
            for _ in range(20)
        }
    assert statuses == {200}


def test_anonymous_limit_applies_when_turned_on(digit_png):
    with running(rate_limit_anonymous="3/minute") as client:
        statuses = [
            client.post(
                "/predict", content=digit_png, headers={"content-type": "image/png"}
            ).status_code
            for _ in range(5)
        ]
    assert statuses == [200, 200, 200, 429, 429]


def test_batch_images_count_one_each(digit_png):
    files = [("files", (f"{i}.png", digit_png, "image/png")) for i in range(4)]
    headers = {"X-API-Key": KEY_A}
    with running(api_keys=KEY_A, rate_limit="6/minute") as client:
        first = client.post("/predict-batch", files=files, headers=headers)
        second = client.post("/predict-batch", files=files, headers=headers)
    assert first.status_code == 200
    assert second.status_code == 429
    assert "the rate limit is 6 per 1 minute" in second.json()["detail"]


def test_wrong_keys_are_limited_per_address(digit_png):
    with running(api_keys=KEY_A, auth_failure_limit="3/minute") as client:
        wrong = [
            client.post(
                "/predict",
                content=digit_png,
                headers={"content-type": "image/png", "X-API-Key": f"guess-{i:012d}"},
            ).status_code
            for i in range(5)
        ]
        right = client.post(
            "/predict",
            content=digit_png,
            headers={"content-type": "image/png", "X-API-Key": KEY_A},
        )
    assert wrong == [401, 401, 401, 429, 429]
    assert right.status_code == 429  # the address is locked out for the window
    assert "failed API-key checks" in right.json()["detail"]


@pytest.mark.parametrize("value", [" , ", ",", " ,, "])
def test_keys_that_parse_to_nothing_stop_the_server(value):
    with pytest.raises(ValidationError, match="holds no key"):
        Settings(api_keys=value)


def test_short_keys_are_refused():
    with pytest.raises(ValidationError, match="fewer than 16"):
        Settings(api_keys=f"{KEY_A},short")


@pytest.mark.parametrize("limit", ["600/fortnight", "many", "10 per"])
def test_unparseable_limit_fails_at_start(limit):
    with pytest.raises(ValidationError, match="cannot be parsed"):
        Settings(rate_limit=limit)


def test_unsupported_storage_fails_at_start():
    with pytest.raises(ValidationError, match="not supported"):
        Settings(rate_limit_storage_uri="memcached://localhost:11211")


def test_trailing_slash_is_not_redirected_to_the_callers_host(digit_png):
    with running() as client:
        response = client.post(
            "/predict/",
            content=digit_png,
            headers={"content-type": "image/png", "host": "evil.example"},
            follow_redirects=False,
        )
    assert response.status_code == 404
    assert "location" not in response.headers


@pytest.mark.anyio
async def test_flooding_with_client_ids_resets_no_ones_limit():
    """Thousands of other callers leave an exhausted caller exhausted."""
    limiter = RateLimiter(make_settings(rate_limit="2/minute"))
    victim = Caller(client_id_for_key(KEY_B), authenticated=True)
    await limiter.charge(victim, cost=2)
    for index in range(20_000):
        await limiter.charge(Caller(f"key-{index}", authenticated=True))
    with pytest.raises(RateLimitedError):
        await limiter.charge(victim)


def test_key_ids_do_not_reveal_keys():
    assert KEY_A not in client_id_for_key(KEY_A)
    assert client_id_for_key(KEY_A) != client_id_for_key(KEY_B)


@pytest.fixture
def anyio_backend():
    return "asyncio"
