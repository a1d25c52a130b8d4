"""Datasets of the Azure path: reports logged to MLflow from Blob, chief-only saves."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import fsspec
import mlflow
from kedro.io import AbstractDataset, DatasetError

logger = logging.getLogger(__name__)


class MlflowLoggedDataset(AbstractDataset[Any, Any]):
    """Wraps a file dataset: save it, then log the very bytes saved to the MLflow run.

    kedro-mlflow's ``MlflowArtifactDataset`` logs the dataset's local path, so it
    cannot wrap a dataset on Blob. This one reads the saved file back through
    fsspec (same credentials) and logs it under its file name.

    Example catalog entry::

        metrics:
          type: mnist_mlops.azure.datasets.MlflowLoggedDataset
          dataset:
            type: json.JSONDataset
            filepath: abfs://mnist/08_reporting/metrics.json
            credentials: blob
    """

    def __init__(
        self,
        *,
        dataset: dict[str, Any],
        artifact_path: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Build the wrapped dataset from its config (needs a `filepath`)."""
        if "filepath" not in dataset:
            raise DatasetError(
                f"MlflowLoggedDataset wraps file datasets; the config {dataset} has "
                "no 'filepath'. Add one or use the dataset without the wrapper."
            )
        self._config = dict(dataset)
        self._dataset = AbstractDataset.from_config("wrapped", self._config)
        self._artifact_path = artifact_path
        self.metadata = metadata

    def load(self) -> Any:
        """Load the wrapped dataset."""
        return self._dataset.load()

    def save(self, data: Any) -> None:
        """Save the wrapped dataset, then log the saved file if an MLflow run is on."""
        self._dataset.save(data)
        if mlflow.active_run() is None:
            return
        url = str(self._config["filepath"])
        options = {
            **(self._config.get("credentials") or {}),
            **(self._config.get("fs_args") or {}),
        }
        with fsspec.open(url, "rb", **options) as fh:
            payload = fh.read()
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / PurePosixPath(url).name
            local.write_bytes(payload)
            mlflow.log_artifact(str(local), self._artifact_path)
        logger.debug("Logged %s to MLflow run.", url)

    def _exists(self) -> bool:
        return self._dataset.exists()

    def _describe(self) -> dict[str, Any]:
        return {"dataset": self._dataset, "artifact_path": self._artifact_path}


class ChiefOnlyDataset(AbstractDataset[Any, Any]):
    """Wraps a dataset on a non-chief worker of a distributed job: loads, never saves.

    Every worker of a multi-worker step computes the same model; only the chief
    (rank 0) writes it, as kedro-azureml does for the data it passes between steps.
    """

    def __init__(self, dataset: AbstractDataset, name: str) -> None:
        """Wrap `dataset`, known in the catalog as `name`."""
        self._dataset = dataset
        self._name = name

    def load(self) -> Any:
        """Load the wrapped dataset."""
        return self._dataset.load()

    def save(self, data: Any) -> None:
        """Do not save: the chief worker saves the same data."""
        logger.info("Worker is not the chief: '%s' is saved by the chief.", self._name)

    def _exists(self) -> bool:
        return self._dataset.exists()

    def _describe(self) -> dict[str, Any]:
        return {"dataset": self._dataset, "saves": "chief worker only"}
