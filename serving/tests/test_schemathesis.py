"""Property-based API test: schemathesis against the app's OpenAPI, in-process.

Generated requests (valid and invalid) must never get a 5xx, and every response
must match the documented status codes, content types and schemas.
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import make_settings
from mnist_serving.main import create_app

APP = create_app(make_settings(max_batch_images=8))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


@pytest.fixture(scope="module", autouse=True)
def _lifespan():
    """Keep the app's lifespan running (model loaded) while the cases run."""
    with TestClient(APP) as client:
        assert client.get("/health/ready").status_code == 200
        yield


@schema.parametrize()
@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case):
    case.call_and_validate(checks=CHECKS)
