"""The middleware's direct dispatch of the predict routes answers as the router does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from conftest import make_settings
from mnist_serving.main import create_app
from mnist_serving.middleware import ServingMiddleware

SETTINGS = {"api_keys": "k1", "max_batch_images": 2}
KEY = {"X-API-Key": "k1"}


@contextmanager
def serving(direct: bool) -> Iterator[TestClient]:
    """A client; with direct=False the middleware sends every request to the router."""
    app = create_app(make_settings(**SETTINGS))
    if not direct:
        (entry,) = [m for m in app.user_middleware if m.cls is ServingMiddleware]
        entry.kwargs["direct"] = ()
    with TestClient(app, raise_server_exceptions=False) as client:
        layer = app.middleware_stack
        while not isinstance(layer, ServingMiddleware):
            layer = layer.app
        assert bool(layer._direct) is direct  # the two paths really differ
        yield client


def requests(digit_png: bytes) -> list[tuple[str, dict]]:
    png = ("d.png", digit_png, "image/png")
    return [
        ("ok", {"url": "/predict", "files": {"file": png}, "headers": KEY}),
        ("no key", {"url": "/predict", "files": {"file": png}}),
        (
            "wrong key",
            {"url": "/predict", "files": {"file": png}, "headers": {"X-API-Key": "x"}},
        ),
        ("no file", {"url": "/predict", "data": {"file": "x"}, "headers": KEY}),
        (
            "not png",
            {
                "url": "/predict",
                "files": {"file": ("a", b"GIF89a", "image/gif")},
                "headers": KEY,
            },
        ),
        (
            "bad json",
            {
                "url": "/predict-drawing",
                "content": b"{",
                "headers": {**KEY, "content-type": "application/json"},
            },
        ),
        (
            "batch",
            {"url": "/predict-batch", "files": [("files", png)] * 2, "headers": KEY},
        ),
        (
            "too many",
            {"url": "/predict-batch", "files": [("files", png)] * 3, "headers": KEY},
        ),
    ]


@pytest.mark.parametrize("index", range(8))
def test_direct_and_routed_answers_match(digit_png, index):
    name, request = requests(digit_png)[index]
    answers = []
    for direct in (True, False):
        with serving(direct) as client:
            headers = {**request.get("headers", {}), "X-Request-ID": "same"}
            response = client.post(**{**request, "headers": headers})
            answers.append(
                (
                    response.status_code,
                    response.json(),
                    response.headers.get("www-authenticate"),
                )
            )
    assert answers[0] == answers[1], name


def test_metrics_label_is_the_route(digit_png):
    with serving(direct=True) as client:
        client.post(
            "/predict", files={"file": ("d.png", digit_png, "image/png")}, headers=KEY
        )
        text = client.get("/metrics").text
    assert (
        'mnist_http_requests_total{method="POST",route="/predict",status="200"}' in text
    )
