"""A throw-away MLflow registry, and models registered as the project hook does."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow

NAME = "mnist-digit-classifier"


def make_empty_store(folder: Path) -> Path:
    """An MLflow SQLite store with its tables made (the migrations take seconds)."""
    path = folder / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@contextmanager
def fresh_registry(folder: Path, empty_store: Path) -> Iterator[mlflow.MlflowClient]:
    """MLflow tracking and registry in `folder` (a copy of `empty_store`)."""
    previous = mlflow.get_tracking_uri()
    shutil.copy(empty_store, folder / "mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    client.create_experiment("promotion", artifact_location=str(folder / "artifacts"))
    mlflow.set_experiment("promotion")
    client.create_registered_model(NAME)
    try:
        yield client
    finally:
        mlflow.set_tracking_uri(previous)


def register(
    client: mlflow.MlflowClient, model: bytes, card: dict[str, Any], version: str
) -> dict[str, Any]:
    """Log the export and card as the project hook does; register; the run's card."""
    digest = hashlib.sha256(model).hexdigest()
    card = {**card, "version": version, "model_sha256": digest}
    with mlflow.start_run() as run:
        card["mlflow_run_id"] = run.info.run_id
        mlflow.log_dict(card, "model/model_card.json")
        folder = Path(mlflow.get_tracking_uri().removeprefix("sqlite:///")).parent
        path = folder / "export" / run.info.run_id / "mnist_cnn.tflite"
        path.parent.mkdir(parents=True)
        path.write_bytes(model)
        mlflow.log_artifact(str(path), artifact_path="model")
    client.create_model_version(
        NAME, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    )
    return card


def alias(client: mlflow.MlflowClient) -> str:
    """The registered version that holds `champion`."""
    return str(client.get_model_version_by_alias(NAME, "champion").version)
