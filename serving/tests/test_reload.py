"""POST /admin/reload and MODEL_POLL_SECONDS through TestClient: auth and outcomes."""

from __future__ import annotations

import logging
import time

import pytest
from pydantic import ValidationError

from conftest import FIXTURE_VERSION, make_settings
from mnist_serving.core.config import Settings
from serve_process import (
    export_version,
    kedro_project,
    remove_version,
)

TOKEN = "t0ken-for-tests-0123456789abcdef"  # noqa: S105 - a test token
AUTH = {"Authorization": f"Bearer {TOKEN}"}
V1 = "2026-12-01T00.00.00.000Z"
V2 = "2026-12-02T00.00.00.000Z"


@pytest.fixture
def project(tmp_path):
    """A Kedro project with one exported version, V1."""
    root = kedro_project(tmp_path / "project")
    export_version(root, V1)
    return root


def predict_version(client, digit_png) -> str:
    response = client.post("/predict", files={"file": ("d.png", digit_png)})
    assert response.status_code == 200, response.text
    return response.json()["model_version"]


# --- authentication ----------------------------------------------------------


def test_reload_is_off_without_a_token(client):
    response = client.post("/admin/reload", headers=AUTH)
    assert response.status_code == 403
    assert response.json() == {
        "detail": "admin endpoints are off: ADMIN_TOKEN is not set; configure a "
        "token to enable them"
    }


def test_reload_is_off_when_the_token_file_is_absent(client_with, tmp_path):
    absent = tmp_path / "no-secret" / "token"
    with client_with(admin_token_file=absent) as client:
        response = client.post("/admin/reload", headers=AUTH)
    assert response.status_code == 403
    assert f"ADMIN_TOKEN_FILE {absent} does not exist" in response.json()["detail"]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing admin token"),
        ({"Authorization": "Bearer wrong-token-0123456789"}, "invalid admin token"),
        ({"Authorization": f"Basic {TOKEN}"}, "missing admin token"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "invalid admin token"),
        ({"X-API-Key": TOKEN}, "missing admin token"),
    ],
)
def test_reload_refuses_a_missing_or_wrong_token(client_with, headers, message):
    with client_with(admin_token=TOKEN) as client:
        response = client.post("/admin/reload", headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"].startswith(message)
    assert response.headers["www-authenticate"] == "Bearer"


def test_reload_accepts_the_token_from_a_file(client_with, tmp_path):
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    with client_with(admin_token_file=secret) as client:
        response = client.post("/admin/reload", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {
        "status": "unchanged",
        "model_version": FIXTURE_VERSION,
        "previous_version": FIXTURE_VERSION,
        "sha256": response.json()["sha256"],
    }


def test_admin_token_must_be_long_and_not_an_api_key():
    with pytest.raises(ValidationError, match="fewer than 16"):
        Settings(admin_token="short")  # noqa: S106
    with pytest.raises(ValidationError, match="equals one of the API keys"):
        Settings(admin_token=TOKEN, api_keys=f"other-key-0123456789,{TOKEN}")


def test_admin_token_is_not_shown_in_settings_repr():
    assert TOKEN not in repr(make_settings(admin_token=TOKEN))


# --- outcomes ----------------------------------------------------------------


def test_reload_swaps_in_a_new_version(client_with, project, digit_png):
    with client_with(model_uri=None, project_dir=project, admin_token=TOKEN) as client:
        assert predict_version(client, digit_png) == V1
        export_version(project, V2)
        response = client.post("/admin/reload", headers=AUTH)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "reloaded"
        assert response.json()["previous_version"] == V1
        assert response.json()["model_version"] == V2
        assert predict_version(client, digit_png) == V2
        assert client.get("/model-info").json()["model_version"] == V2
        again = client.post("/admin/reload", headers=AUTH).json()
        metrics = client.get("/metrics").text
    assert again["status"] == "unchanged"
    assert 'mnist_model_reloads_total{outcome="reloaded",trigger="admin"}' in metrics


def test_tampered_version_is_refused_and_the_old_one_keeps_serving(
    client_with, project, digit_png, caplog
):
    with client_with(model_uri=None, project_dir=project, admin_token=TOKEN) as client:
        export_version(project, V2, tamper=True)
        with caplog.at_level(logging.ERROR, logger="mnist_serving.reload"):
            response = client.post("/admin/reload", headers=AUTH)
        detail = response.json()["detail"]
        health = client.get("/health")
        info = client.get("/model-info").json()
        ready = client.get("/health/ready")
        served = predict_version(client, digit_png)
        remove_version(project, V2)  # the operator removes the bad export
        fixed = client.post("/admin/reload", headers=AUTH)
        health_after = client.get("/health").json()
    assert response.status_code == 409
    assert detail.startswith(f"model reload failed, still serving model {V1}: model ")
    assert "sha256" in detail
    assert "re-export with `kedro run`" in detail
    assert health.status_code == 200
    assert health.json()["model_version"] == V1
    assert health.json()["last_reload_failed"] is True  # public: no details
    assert info["last_reload_error"] == detail.split(": ", 1)[1]
    assert ready.status_code == 200
    assert served == V1
    assert [r.getMessage() for r in caplog.records] == [detail]
    assert fixed.json()["status"] == "unchanged"
    assert health_after["last_reload_failed"] is False


def test_reload_of_a_missing_model_names_the_path(client_with, tmp_path, digit_png):
    project = kedro_project(tmp_path / "p")
    export_version(project, V1)
    with client_with(model_uri=None, project_dir=project, admin_token=TOKEN) as client:
        remove_version(project, V1)
        response = client.post("/admin/reload", headers=AUTH)
        served = predict_version(client, digit_png)
    assert response.status_code == 409
    assert "no version under" in response.json()["detail"]
    assert "run `kedro run` to train and export one" in response.json()["detail"]
    assert served == V1


def test_reload_loads_a_model_that_was_missing_at_start(client_with, tmp_path):
    project = kedro_project(tmp_path / "p")
    with client_with(model_uri=None, project_dir=project, admin_token=TOKEN) as client:
        assert client.get("/health/ready").status_code == 503
        failed = client.post("/admin/reload", headers=AUTH)
        reason = client.get("/model-info").json()["detail"]
        export_version(project, V1)
        loaded = client.post("/admin/reload", headers=AUTH).json()
        ready = client.get("/health/ready").json()
    assert failed.status_code == 409
    assert "no model is served" in failed.json()["detail"]
    assert "no exported model at" in reason
    assert loaded == {
        "status": "reloaded",
        "model_version": V1,
        "previous_version": None,
        "sha256": loaded["sha256"],
    }
    assert ready == {"status": "ready", "model_version": V1}


def test_polling_picks_up_a_new_version_and_skips_a_bad_one(client_with, project):
    settings = {"model_uri": None, "project_dir": project, "model_poll_seconds": 0.05}
    with client_with(**settings) as client:
        export_version(project, V2, tamper=True)
        error = wait_for_health(client, lambda h: h["last_reload_failed"])
        assert error["model_version"] == V1
        assert "sha256" in client.get("/model-info").json()["last_reload_error"]
        remove_version(project, V2)
        export_version(project, "2026-12-03T00.00.00.000Z")
        health = wait_for_health(client, lambda h: h["model_version"] != V1)
    assert health["model_version"] == "2026-12-03T00.00.00.000Z"
    assert health["last_reload_failed"] is False
    assert health["status"] == "ok"


def wait_for_health(client, condition, limit: float = 10.0) -> dict:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        health = client.get("/health").json()
        if condition(health):
            return health
        time.sleep(0.02)
    raise AssertionError(f"/health never met the condition: {health}")
