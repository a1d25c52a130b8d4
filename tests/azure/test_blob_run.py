"""`kedro run --env azurite`: raw CSV from Blob, every artifact to Blob (Azurite)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from mnist_serving.model.card import digit_probabilities

from mnist_mlops.azure.errors import BlobStorageError
from mnist_mlops.pipeline_registry import register_pipelines
from tests.azure.azurite import Azurite, free_port
from tests.azure.conftest import SMALL_RUN, blob_container


def kedro_run(path: Path, env: str, params: dict[str, Any]) -> None:
    """What `kedro run --env <env> --params ...` does, in this process."""
    bootstrap_project(path)
    with KedroSession.create(path, env=env, runtime_params=params) as session:
        session.run()


def catalog_config(path: Path, env: str) -> dict[str, dict[str, Any]]:
    """The resolved catalog config of the project at `path` in `env`."""
    bootstrap_project(path)
    with KedroSession.create(path, env=env) as session:
        return session.load_context().catalog.config_resolver.config


def blob_path(config: dict[str, Any], container: str) -> str | None:
    """Where a dataset (or the dataset it wraps) lives in `container`, if on Blob."""
    config = config.get("dataset", config)
    prefix = f"abfs://{container}/"
    filepath = str(config.get("filepath", ""))
    return filepath.removeprefix(prefix) if filepath.startswith(prefix) else None


def npy(name: str, version: str) -> str:
    """The blob of one version of a model-input array."""
    return f"05_model_input/{name}.npy/{version}/{name}.npy"


def litert_accuracy(model: bytes, images: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of a LiteRT model, run with ai_edge_litert as serving runs it.

    The answer is the top of the ten digits, as serving's: an eleventh "not
    one digit" output, where the model has one, is not a digit.
    """
    interpreter = Interpreter(model_content=model)
    entry = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(entry["index"], list(images.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(entry["index"], images)
    interpreter.invoke()
    probs = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return float(np.mean(digit_probabilities(probs).argmax(-1) == labels))


@pytest.mark.slow
def test_run_on_azurite_reads_and_writes_only_blob(
    blob_project: Path, azurite: Azurite
) -> None:
    container = blob_container()
    kedro_run(blob_project, "azurite", SMALL_RUN)

    blobs = azurite.blob_names(container)
    card_name = next(b for b in blobs if b.startswith("06_models/model_card.json/"))
    card = json.loads(azurite.read(container, card_name))
    version = card["version"]
    config = catalog_config(blob_project, "azurite")
    outputs = register_pipelines()["__default__"].all_outputs()
    expected = set()
    # The champion release is written only when the gate promotes, which the
    # floors refuse for this 1-epoch model (tests/test_production_loop.py
    # follows a promotion).
    for name in (outputs & set(config)) - {"champion_release"}:
        if path := blob_path(config[name], container):
            file = path.rsplit("/", 1)[-1]
            versioned = config[name].get("versioned")
            expected.add(f"{path}/{version}/{file}" if versioned else path)
    assert len(expected) == 27  # every versioned file output of the catalog
    assert expected <= set(blobs)
    assert [p for p in (blob_project / "data").rglob("*") if p.is_file()] == []

    model = azurite.read(
        container, f"06_models/mnist_cnn.tflite/{version}/mnist_cnn.tflite"
    )
    assert hashlib.sha256(model).hexdigest() == card["model_sha256"]
    assert len(model) == card["model_bytes"]
    images = np.load(
        io.BytesIO(azurite.read(container, npy("x_official_test", version)))
    )
    labels = np.load(
        io.BytesIO(azurite.read(container, npy("y_official_test", version)))
    )
    assert images.shape == (300, 28, 28, 1)
    accuracy = litert_accuracy(model, images, labels)
    assert accuracy == pytest.approx(
        card["metrics"]["official_test_accuracy"], abs=0.01
    )
    assert accuracy > 0.3  # 1 epoch on 1,530 images; chance is 0.1

    client = mlflow.MlflowClient(f"sqlite:///{blob_project / 'mlflow.db'}")
    (registered,) = client.search_model_versions("name='mnist-digit-classifier'")
    assert registered.run_id == card["mlflow_run_id"]
    assert registered.tags["model_sha256"] == card["model_sha256"]
    artifacts = {a.path for a in client.list_artifacts(card["mlflow_run_id"])}
    assert {"metrics.json", "confusion_matrix.png", "training_curves.png"} <= artifacts


@pytest.mark.slow
def test_unreachable_blob_fails_naming_account_and_container_before_writing(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURITE_BLOB_PORT", str(free_port()))  # nothing listens
    before = {p for p in project.rglob("*") if p.is_file()}

    with pytest.raises(
        BlobStorageError,
        match=r"Blob container 'mnist' of storage account 'devstoreaccount1' "
        r"\(http://127\.0\.0\.1:\d+/devstoreaccount1/mnist\) cannot be reached: "
        r".*Start Azurite",
    ):
        kedro_run(project, "azurite", SMALL_RUN)

    created = {p for p in project.rglob("*") if p.is_file()} - before
    assert {p.name for p in created} <= {"mlflow.db"}  # the tracking store, no run
    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    assert client.search_runs(client.search_experiments()[0].experiment_id) == []
