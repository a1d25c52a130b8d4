"""The Azure-path pieces on their own: Blob probe, MLflow logging, versions, workers."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from kedro.io import DataCatalog
from kedro_datasets.json import JSONDataset

from mnist_mlops.azure.catalog import JobVersionedDataCatalog
from mnist_mlops.azure.datasets import ChiefOnlyDataset, MlflowLoggedDataset
from mnist_mlops.azure.errors import AzureSetupError, BlobStorageError
from mnist_mlops.azure.hooks import AzureRunHooks
from mnist_mlops.azure.storage import BlobTarget, blob_targets, check_container
from mnist_mlops.azure.versioning import SAVE_VERSION_ENV, shared_save_version
from tests.azure.azurite import Azurite, connection_string, free_port

V1, V2 = "2026-01-01T00.00.00.000Z", "2026-02-01T00.00.00.000Z"


def target(port: int, container: str = "mnist") -> BlobTarget:
    """The Blob target of a catalog entry on Azurite's account at `port`."""
    return BlobTarget(container, (("connection_string", connection_string(port)),))


def test_blob_targets_finds_containers_of_wrapped_datasets_only_on_blob() -> None:
    creds = {"connection_string": "UseDevelopmentStorage=true"}
    configs = {
        "raw": {"filepath": "abfs://raw-data/a.csv", "credentials": creds},
        "report": {
            "dataset": {"filepath": "abfs://mnist/r.json", "credentials": creds}
        },
        "local": {"filepath": "data/x.json"},
        "unused": {"filepath": "abfs://elsewhere/u.csv"},
    }
    found = blob_targets(configs, ["raw", "report", "local", "params:x"])
    assert [t.container for t in found] == ["mnist", "raw-data"]
    assert dict(found[0].options) == creds


def test_down_endpoint_names_account_container_and_fix() -> None:
    port = free_port()
    with pytest.raises(BlobStorageError) as caught:
        check_container(target(port))
    message = str(caught.value)
    assert message.startswith(
        "Blob container 'mnist' of storage account 'devstoreaccount1' "
        f"(http://127.0.0.1:{port}/devstoreaccount1/mnist) cannot be reached"
    )
    assert "Start Azurite" in message and "AZURITE_BLOB_PORT" in message


def test_missing_container_says_how_to_create_it(azurite: Azurite) -> None:
    with pytest.raises(BlobStorageError, match=r"does not exist\. Create it: `az "):
        check_container(target(azurite.port, "no-such-container"))
    azurite.service.create_container("mnist")
    check_container(target(azurite.port))  # answers: no error


def test_mlflow_logged_dataset_logs_the_bytes_it_saved_to_blob(
    azurite: Azurite, tmp_path: Path
) -> None:
    azurite.service.create_container("mnist")
    dataset = MlflowLoggedDataset(
        dataset={
            "type": "json.JSONDataset",
            "filepath": "abfs://mnist/08_reporting/metrics.json",
            "credentials": {"connection_string": connection_string(azurite.port)},
        }
    )
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("mlflow-logged-dataset")
    with mlflow.start_run() as run:
        dataset.save({"accuracy": 0.99})
    saved = azurite.read("mnist", "08_reporting/metrics.json")
    logged = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id))
    assert (logged / "metrics.json").read_bytes() == saved
    assert dataset.load() == {"accuracy": 0.99}
    dataset.save({"accuracy": 1.0})  # no active run: saves, logs nothing
    assert json.loads(azurite.read("mnist", "08_reporting/metrics.json")) == {
        "accuracy": 1.0
    }


def test_job_version_pins_every_versioned_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {
        "card": {"type": "json.JSONDataset", "filepath": str(tmp_path / "card.json"),
                 "versioned": True},
        "plain": {"type": "json.JSONDataset", "filepath": str(tmp_path / "plain.json")},
    }  # fmt: skip
    JobVersionedDataCatalog.from_config(config, save_version=V2).save("card", "newer")
    monkeypatch.setenv(SAVE_VERSION_ENV, V1)
    catalog = JobVersionedDataCatalog.from_config(config, save_version="ignored")
    catalog.save("card", "this job")
    assert (tmp_path / "card.json" / V1 / "card.json").is_file()
    assert catalog.load("card") == "this job"  # its own version, not the newest (V2)
    override = JobVersionedDataCatalog.from_config(config, load_versions={"card": V2})
    assert override.load("card") == "newer"


def test_malformed_job_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SAVE_VERSION_ENV, "latest")
    with pytest.raises(AzureSetupError, match="'latest' is not a Kedro version"):
        shared_save_version()


def test_azure_step_without_job_version_fails_before_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SAVE_VERSION_ENV, raising=False)
    runner = "<kedro_azureml.runner.AzurePipelinesRunner object at 0x7f>"
    with pytest.raises(AzureSetupError, match=f"no {SAVE_VERSION_ENV}"):
        AzureRunHooks().before_pipeline_run({"runner": runner}, None, DataCatalog())


@pytest.mark.parametrize(("index", "saved"), [(0, True), (1, False)])
def test_only_the_chief_worker_saves(
    index: int, saved: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                    "task": {"type": "worker", "index": index}}),
    )  # fmt: skip
    path = tmp_path / "model.json"
    catalog = DataCatalog.from_config(
        {"model": {"type": "json.JSONDataset", "filepath": str(path)}}
    )
    AzureRunHooks().after_catalog_created(catalog)
    catalog.save("model", {"w": 1})
    assert path.exists() is saved
    assert isinstance(catalog.get("model"), ChiefOnlyDataset) is not saved
    if saved:
        assert isinstance(catalog.get("model"), JSONDataset)
