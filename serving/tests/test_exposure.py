"""What unauthenticated callers can learn: status codes, not paths or runs."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from conftest import KEY_A, running
from serve_process import free_port, running_server

ABSENT = "/secret/place/model.tflite"


def test_public_probes_say_a_code_not_the_path():
    with running(model_uri=ABSENT) as client:
        ready = client.get("/health/ready")
        health = client.get("/health")
    assert ready.json() == {"detail": "not ready: model_invalid"}
    assert health.json()["reason"] == "model_invalid"
    for response in (ready, health):
        assert "secret" not in response.text


def test_model_info_needs_the_key_when_keys_are_set():
    with running(api_keys=KEY_A) as client:
        anonymous = client.get("/model-info")
        with_key = client.get("/model-info", headers={"X-API-Key": KEY_A})
        spec = client.get("/openapi.json").json()
    assert anonymous.status_code == 401
    assert "mlflow_run_id" not in anonymous.text
    assert with_key.status_code == 200
    assert "git_commit" in with_key.json()
    assert spec["paths"]["/model-info"]["get"]["security"] == [{"APIKeyHeader": []}]


def test_model_info_says_why_to_key_holders():
    with running(model_uri=ABSENT, api_keys=KEY_A) as client:
        info = client.get("/model-info", headers={"X-API-Key": KEY_A})
    assert info.status_code == 503
    assert f"MODEL_URI {ABSENT} does not exist" in info.json()["detail"]


@pytest.mark.reliability
def test_metrics_port_takes_metrics_off_the_api_port(tmp_path):
    metrics_port = free_port()
    env = {
        "MODEL_URI": str(Path(__file__).parent / "fixtures/model/mnist_cnn.tflite"),
        "METRICS_PORT": str(metrics_port),
    }
    with running_server(tmp_path, env) as server:
        api = httpx.get(f"{server.url}/metrics")
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert api.status_code == 404
    assert metrics.status_code == 200
    assert 'mnist_http_requests_total{method="GET",route="/health/ready"' in (
        metrics.text
    )
