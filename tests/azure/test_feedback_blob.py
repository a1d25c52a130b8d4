"""`kedro run --env azurite --pipeline feedback`: PostgreSQL in, Blob (Azurite) out."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from tests.azure.azurite import Azurite
from tests.azure.conftest import blob_container, copy_project
from tests.feedback_store import create_store, records
from tests.pipelines.feedback.postgres import postgres_server

LABELLED = 40


def test_feedback_from_postgresql_becomes_arrays_on_blob(
    azurite: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = blob_container()
    azurite.service.create_container(container)
    project = copy_project(tmp_path / "project")
    monkeypatch.setenv("AZURITE_BLOB_PORT", str(azurite.port))
    images = np.random.default_rng(3).integers(0, 256, (LABELLED, 28, 28), np.uint8)
    with postgres_server() as server:
        create_store(server.url, records(images, np.arange(LABELLED) % 10))
        plain = server.url.replace("postgresql+psycopg://", "postgresql://")
        monkeypatch.setenv("DATABASE_URL", plain)  # as serving's pods take it
        bootstrap_project(project)
        params = {"feedback": {"min_examples": 20}}
        with KedroSession.create(project, env="azurite", runtime_params=params) as s:
            s.run(pipeline_names=["feedback"])
    blobs = azurite.blob_names(container)
    arrays = {}
    for name in ("x_feedback_train", "y_feedback_train", "x_feedback_holdout"):
        (blob,) = [b for b in blobs if b.startswith(f"05_model_input/{name}.npy/")]
        arrays[name] = np.load(io.BytesIO(azurite.read(container, blob)))
    assert len(arrays["x_feedback_train"]) + len(arrays["x_feedback_holdout"]) == 40
    assert arrays["x_feedback_train"].shape[1:] == (28, 28, 1)  # the model input
    assert set(arrays["y_feedback_train"]) <= set(range(10))
    (report,) = [b for b in blobs if b.startswith("08_reporting/feedback_report.json")]
    assert json.loads(azurite.read(container, report))["labelled_records"] == LABELLED
    assert not (project / "data").exists() or not any((project / "data").rglob("*.npy"))
