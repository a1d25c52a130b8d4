"""The training image that Azure ML would run runs the smoke pipeline on Azurite.

`make image-training` builds the image (once per session); the project is mounted
as Azure ML uploads it (conf, pyproject, src; no data) and `kedro run --env
azurite` runs inside the image against the Azurite on this host. It must end
with the LiteRT model and its card on Blob and the model registered in MLflow:
the image is complete (its own lock, azureml-mlflow included).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.azure.azurite import Azurite
from tests.azure.conftest import blob_container, copy_project, upload_raw
from tests.conftest import ROOT

pytestmark = [pytest.mark.container, pytest.mark.slow]
IMAGE = "mnist-training:latest"
WORKDIR = "/home/kedro_docker"  # the image's WORKDIR, where Azure ML runs steps
SMOKE = (
    "data_processing.split.official_test_rows=300,training.epochs=1,"
    "training.export.quantization=none,"  # as tests/azure/conftest.py's SMALL_RUN
    "training.quality_gate.min_official_test_accuracy=0,"
    "training.quality_gate.min_drawn_test_accuracy=0,"
    "training.numbers.count=20,training.numbers.drawn_count=10"
)


def tool(name: str, package: str) -> str:
    """The path of a system tool; a failure naming its package if it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: apt-get install -y {package} "
            "(or `make system-deps` as root)"
        )
    return path


@pytest.fixture(scope="session")
def training_image() -> str:
    """`make image-training` (once per session): the image's tag."""
    build = subprocess.run(
        [tool("make", "make"), "-C", str(ROOT), "image-training"],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return IMAGE


def test_training_image_runs_the_smoke_pipeline_on_azurite(
    training_image: str, azurite: Azurite, sample_table: pd.DataFrame, tmp_path: Path
) -> None:
    upload_raw(azurite, sample_table)
    project = copy_project(tmp_path / "project")
    shutil.copy(ROOT / ".telemetry", project)
    run = subprocess.run(
        [
            tool("docker", "docker.io"), "run", "--rm", "--network", "host",
            "--user", f"{os.getuid()}:{os.getgid()}", "--env", "HOME=/tmp",
            "--volume", f"{project}:{WORKDIR}",
            "--volume", f"{ROOT / 'src'}:{WORKDIR}/src:ro",
            "--env", f"AZURITE_BLOB_PORT={azurite.port}",
            "--env", f"MLFLOW_TRACKING_URI=sqlite:///{WORKDIR}/mlflow.db",
            training_image, "kedro", "run", "--env", "azurite", "--params", SMOKE,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]

    container = blob_container()
    blobs = azurite.blob_names(container)
    card_blob = next(b for b in blobs if b.startswith("06_models/model_card.json/"))
    card = json.loads(azurite.read(container, card_blob))
    model = azurite.read(
        container, f"06_models/mnist_cnn.tflite/{card['version']}/mnist_cnn.tflite"
    )
    assert hashlib.sha256(model).hexdigest() == card["model_sha256"]
    assert card["metrics"]["official_test_accuracy"] > 0.3  # 1 epoch; chance is 0.1
    assert [p for p in (project / "data").rglob("*") if p.is_file()] == []

    # The registry as the image's MLflow wrote it (read with sqlite3: the host's
    # MLflow may be newer and would ask to migrate the schema).
    with sqlite3.connect(project / "mlflow.db") as db:
        registered = db.execute(
            "SELECT name, run_id FROM model_versions WHERE name = ?",
            ("mnist-digit-classifier",),
        ).fetchall()
        tags = dict(db.execute("SELECT key, value FROM model_version_tags"))
    assert registered == [("mnist-digit-classifier", card["mlflow_run_id"])]
    assert tags["model_sha256"] == card["model_sha256"]
