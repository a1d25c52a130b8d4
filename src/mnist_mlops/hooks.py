"""Project hooks: run facts for the model card, reports and model logged to MLflow."""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import mlflow
import numpy as np
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from matplotlib.figure import Figure
from mlflow.models import infer_signature

from mnist_mlops.azure.versioning import shared_save_version

logger = logging.getLogger(__name__)

RUN_INFO = "run_info"
CARD = "model_card"
KERAS_MODEL = "keras_model"
LITERT_MODEL = "litert_model"
# Catalog metadata key of the reports that the hook logs to the MLflow run.
REPORT_FLAG = "mlflow_artifact"
# The training environment pins these; stating them skips MLflow's slow inference.
PIP_REQUIREMENTS = ["tensorflow==2.21.0", "keras>=3.15,<4"]


def git_commit() -> str:
    """The checked-out commit, from $GIT_COMMIT (CI, containers) or git itself."""
    if commit := os.environ.get("GIT_COMMIT"):
        return commit
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 - git from PATH, fixed args
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


class RunInfoHook:
    """Puts `run_info` in the catalog; logs reports and registers the model in MLflow.

    Nodes stay pure: the run's identity (Kedro save version, MLflow run id, git
    commit, time) reaches `build_model_card` as the `run_info` dataset. Each
    report (catalog metadata `mlflow_artifact: true`) is logged to the MLflow
    run when it is saved. Once the card exists (parity passed), the Keras model
    is logged to the MLflow run and registered under the card's name with the
    `deployment` and `dataset` tags.
    """

    def __init__(self) -> None:
        """Start with nothing saved."""
        self._saved: dict[str, Any] = {}
        self._catalog: DataCatalog | None = None

    @hook_impl(trylast=True)  # after kedro-mlflow has started its run
    def before_pipeline_run(
        self, run_params: dict[str, Any], catalog: DataCatalog
    ) -> None:
        """Publish the run's identity as the `run_info` dataset."""
        active = mlflow.active_run()
        self._catalog = catalog
        catalog[RUN_INFO] = {
            # = the catalog's save version (one per Azure ML job, see azure/versioning)
            "version": shared_save_version() or run_params["run_id"],
            "mlflow_run_id": active.info.run_id if active else None,
            "git_commit": git_commit(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:
        """Log a saved report; keep the model, register it once the card is on disk.

        Registering after the card is saved means a run that failed its quality
        gate or its parity check (both run before the card is built), or could
        not write its card, never reaches the registry.
        """
        if dataset_name in (KERAS_MODEL, LITERT_MODEL):
            self._saved[dataset_name] = data
        if mlflow.active_run() is None:
            return
        if file_name := self._report_file(dataset_name):
            log_report(data, file_name)
        if dataset_name == CARD:
            register_model(self._job_artifacts(), data)
            self._saved.clear()

    def _report_file(self, dataset_name: str) -> str | None:
        """The file name of a report to log to MLflow; None for other datasets."""
        if self._catalog is None:
            return None
        config = self._catalog.config_resolver.config.get(dataset_name) or {}
        if not (config.get("metadata") or {}).get(REPORT_FLAG):
            return None
        return PurePosixPath(str(config["filepath"])).name

    def _job_artifacts(self) -> dict[str, Any]:
        """What this run saved; in an Azure ML step, also what the other steps saved.

        Steps of one Azure ML job share one save version, to which the catalog's
        versioned datasets are pinned, so the model loaded here is this job's.
        """
        if shared_save_version() and self._catalog is not None:
            for name in (KERAS_MODEL, LITERT_MODEL):
                if name not in self._saved:
                    self._saved[name] = self._catalog.load(name)
        return self._saved


def log_report(data: Any, file_name: str) -> None:
    """Log a report to the active MLflow run: a figure as an image, a dict as JSON.

    kedro-mlflow's MlflowArtifactDataset cannot wrap a Kedro-versioned dataset
    under Kedro 1.x (it picks its own save version, which the catalog rejects),
    so the hook logs the reports. It logs the saved object, not the saved file,
    which works the same for a local file and a blob on Azure.
    """
    if isinstance(data, Figure):
        mlflow.log_figure(data, file_name)
    else:
        mlflow.log_dict(data, file_name)
    logger.debug("Logged report %s to the MLflow run.", file_name)


def register_model(saved: dict[str, Any], card: dict[str, Any]) -> None:
    """Log model, export and card to the active run; register and tag the model.

    `saved` holds what this run saved; a resumed run (`--from-nodes`) that did
    not train logs its export and card but registers nothing.
    """
    mlflow.log_dict(card, "model/model_card.json")
    if LITERT_MODEL in saved:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / card["model_file"]
            path.write_bytes(saved[LITERT_MODEL])
            mlflow.log_artifact(str(path), artifact_path="model")
    if KERAS_MODEL not in saved:
        logger.warning(
            "Model '%s' not registered: the Keras model was not trained "
            "in this run (resumed run). Re-run `kedro run --pipeline "
            "training` to register one.",
            card["name"],
        )
        return
    signature = infer_signature(
        np.zeros((1, *card["input_shape"]), np.float32),
        np.zeros((1, len(card["classes"])), np.float32),
    )
    info = mlflow.keras.log_model(
        saved[KERAS_MODEL],
        name="keras",
        registered_model_name=card["name"],
        signature=signature,
        pip_requirements=PIP_REQUIREMENTS,
    )
    client = mlflow.MlflowClient()
    version = str(info.registered_model_version)
    dataset = (
        f"{card['dataset']['name']} rows={card['dataset']['rows']} "
        f"sha256={card['dataset']['sha256'][:16]}"
    )
    tags = {
        "deployment": card["training"]["deployment_tag"],
        "dataset": dataset,
        "kedro_version": card["version"],
        "model_sha256": card["model_sha256"],
        "official_test_accuracy": str(card["metrics"]["official_test_accuracy"]),
    }
    if "drawn_test_accuracy" in card["metrics"]:
        tags["drawn_test_accuracy"] = str(card["metrics"]["drawn_test_accuracy"])
    for key, value in tags.items():
        client.set_model_version_tag(card["name"], version, key, value)
    client.set_registered_model_tag(card["name"], "dataset", dataset)
    logger.info("Registered MLflow model '%s' version %s.", card["name"], version)
