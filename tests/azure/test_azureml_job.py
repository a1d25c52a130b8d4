"""`kedro azureml compile --env azure` offline; its steps run as on the cluster."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.framework.startup import bootstrap_project

from mnist_mlops.pipeline_registry import register_pipelines
from tests.azure.azurite import Azurite
from tests.azure.conftest import SMALL_RUN, blob_container, copy_project, upload_raw
from tests.azure.steps import KEDRO, Step, load_steps, minimal_env, run_job

JOB_VERSION = "2026-01-02T03.04.05.678Z"  # MNIST_SAVE_VERSION of the compiled job
KEY_SENTINEL = "bm90LWEtcmVhbC1rZXktYnV0LWl0LW11c3Qtbm90LWxlYWs="
# Two workers of 64: the global batch of a one-worker small run (128), so that
# its one epoch takes as many steps and the model learns as much.
PARAMS = {
    **SMALL_RUN,
    "training": {
        **SMALL_RUN["training"],
        "distributed": {"workers": 2},
        "batch_size": 64,
    },
}
STEP_ENV_VARS = {
    "KEDRO_AZURE_RUNNER_CONFIG",
    "MNIST_SAVE_VERSION",
    "GIT_COMMIT",
    "AZURE_STORAGE_ACCOUNT_NAME",
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A project copy and the job `kedro azureml compile --env azure` made of it.

    The compiling shell holds a storage account key, as a developer's might:
    kedro-azureml would copy it into every step unless the config avoids that.
    """
    project = copy_project(tmp_path_factory.mktemp("compiled") / "project")
    env = minimal_env(
        KEDRO_DISABLE_TELEMETRY="true",
        AZURE_STORAGE_ACCOUNT_NAME="mnistdata",
        AZURE_STORAGE_ACCOUNT_KEY=KEY_SENTINEL,
    )
    argv = [
        str(KEDRO), "azureml", "--env", "azure", "compile",
        "--params", json.dumps(PARAMS),
        "--env-var", f"MNIST_SAVE_VERSION={JOB_VERSION}",
        "--env-var", "GIT_COMMIT=0123abc",
        "--env-var", "AZURE_STORAGE_ACCOUNT_NAME=mnistdata",
        "--output", "job.yaml",
    ]  # fmt: skip
    done = subprocess.run(
        argv, check=False, cwd=project, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = (project / "job.yaml").read_text()
    assert KEY_SENTINEL not in text
    return project, yaml.safe_load(text)


def _sanitized(name: str) -> str:
    return name.replace(":", "_").replace(".", "_")


@pytest.mark.slow
def test_compiled_job_is_the_pipeline_on_mnist_cluster_without_secrets(
    compiled: tuple[Path, dict[str, Any]],
) -> None:
    project, job = compiled
    bootstrap_project(project)
    pipeline = register_pipelines()["__default__"]
    steps = load_steps(job)
    assert sorted(steps) == sorted(node.name for node in pipeline.nodes)
    for node, parents in pipeline.node_dependencies.items():
        step = steps[node.name]
        assert step.after == {parent.name for parent in parents}, node.name
        assert set(step.outputs) == {_sanitized(o) for o in node.outputs}
        spec = job["jobs"][node.name]
        assert spec["compute"] == "azureml:mnist-cluster"
        assert spec["environment"] == "azureml:mnist-training@latest"
        assert step.command.startswith(
            f"kedro azureml -e azure execute --pipeline=__default__ --node={node.name} "
        )
        assert set(step.env) == STEP_ENV_VARS, "only the job's own variables"
        assert step.env["KEDRO_AZURE_RUNNER_CONFIG"] == "", "no storage key inside"
        assert step.env["MNIST_SAVE_VERSION"] == JOB_VERSION
    train = steps["train_model_node"]
    assert train.workers == 2
    assert train.distribution == {
        "type": "tensorflow",
        "parameter_server_count": 0,
        "worker_count": 2,
    }
    assert [s.name for s in steps.values() if s.distribution] == ["train_model_node"]


def _mlflow_run_per_step(uri: str) -> Any:
    """Like Azure ML: every step gets a run of its own in the job's experiment."""
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("mnist-mlops")
    runs: dict[str, str] = {}

    def step_env(step: Step) -> dict[str, str]:
        runs[step.name] = client.create_run(experiment, run_name=step.name).info.run_id
        return {"MLFLOW_RUN_ID": runs[step.name]}

    return client, runs, step_env


@pytest.mark.slow
def test_compiled_steps_pass_data_only_through_blob_and_folders(
    compiled: tuple[Path, dict[str, Any]],
    azurite: Azurite,
    sample_table: pd.DataFrame,
    tmp_path: Path,
) -> None:
    project, job = compiled
    upload_raw(azurite, sample_table)
    uri = f"sqlite:///{tmp_path / 'workspace-mlflow.db'}"
    client, runs, step_env = _mlflow_run_per_step(uri)
    base_env = minimal_env(
        KEDRO_DISABLE_TELEMETRY="true",
        TF_CPP_MIN_LOG_LEVEL="2",
        COLUMNS="400",  # one log record per line
        AZURITE_BLOB_PORT=str(azurite.port),
        MLFLOW_TRACKING_URI=uri,
    )

    folders = run_job(
        load_steps(job),
        project=project,
        workdir=tmp_path / "steps",
        kedro_env="azurite",  # the same Blob catalog as `azure`, on Azurite
        base_env=base_env,
        step_env=step_env,
    )

    # In-memory datasets travelled as files in the producers' output folders;
    # catalog datasets went to Blob, leaving their folders empty.
    assert [p.name for p in folders["normalize_node"]["images"].iterdir()] == [
        "images.pickle"
    ]
    assert list(folders["split_dataset_node"]["x_train"].iterdir()) == []
    assert not (project / "data").exists()

    container = blob_container()
    card = json.loads(
        azurite.read(
            container, f"06_models/model_card.json/{JOB_VERSION}/model_card.json"
        )
    )
    model = azurite.read(
        container, f"06_models/mnist_cnn.tflite/{JOB_VERSION}/mnist_cnn.tflite"
    )
    assert card["version"] == JOB_VERSION
    assert hashlib.sha256(model).hexdigest() == card["model_sha256"]
    assert card["training"]["distributed"]["workers"] == 2
    assert card["git_commit"] == "0123abc"
    metrics = json.loads(
        azurite.read(container, f"08_reporting/metrics.json/{JOB_VERSION}/metrics.json")
    )
    assert metrics["official_test_samples"] == 300
    assert 0.3 < metrics["official_test_accuracy"] <= 1.0
    assert np.isclose(sum(np.array(metrics["official_confusion_matrix"]).ravel()), 300)
    history = client.get_metric_history(runs["report_training_node"], "train_loss")
    assert len(history) == 1 and np.isfinite(history[0].value)

    card_run = runs["build_model_card_node"]
    assert card["mlflow_run_id"] == card_run
    (registered,) = client.search_model_versions("name='mnist-digit-classifier'")
    assert registered.run_id == card_run
    assert registered.tags["deployment"] == "candidate"
    assert registered.tags["kedro_version"] == JOB_VERSION
    assert registered.tags["model_sha256"] == card["model_sha256"]
    keras_blobs = [
        b
        for b in azurite.blob_names(container)
        if b.startswith("06_models/mnist_cnn.keras/")
    ]
    assert keras_blobs == [f"06_models/mnist_cnn.keras/{JOB_VERSION}/mnist_cnn.keras"]
    worker_log = (tmp_path / "steps" / "train_model_node.1.log").read_text()
    assert "Worker is not the chief: 'keras_model' is saved by the chief." in worker_log
