"""The Azure-path pieces on their own: Blob probe, job version, chief-only saves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kedro.io import DataCatalog
from kedro_datasets.json import JSONDataset

from mnist_mlops.azure.datasets import ChiefOnlyDataset
from mnist_mlops.azure.errors import AzureSetupError, BlobStorageError
from mnist_mlops.azure.hooks import AzureRunHooks
from mnist_mlops.azure.storage import BlobTarget, blob_targets, check_container
from mnist_mlops.azure.versioning import SAVE_VERSION_ENV, shared_save_version
from tests.azure.azurite import Azurite, connection_string, free_port


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
