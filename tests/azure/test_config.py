"""conf/azure and conf/azurite as Kedro loads them; Azure ML resources as code."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from kedro.framework.project import settings
from kedro.framework.startup import bootstrap_project

from mnist_mlops.azure.cli import azureml_config, commands
from mnist_mlops.azure.errors import AzureSetupError
from mnist_mlops.azure.resources import (
    build_cluster,
    build_environment,
    load_resources,
)
from tests.azure.azurite import DEV_KEY
from tests.azure.locks import IMAGE_LOCK, pins
from tests.conftest import ROOT

BLOB_ENVS = ("azure", "azurite")
# Keys as Azure prints them: 64 bytes in base64 (88 characters).
ACCOUNT_KEY = re.compile(r"[A-Za-z0-9+/]{86}==")


def config(env: str, key: str) -> dict[str, Any]:
    """The `key` config of conf/base + conf/<env>, through the project's loader."""
    bootstrap_project(ROOT)
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(ROOT / "conf"), env=env, **settings.CONFIG_LOADER_ARGS
    )
    return dict(loader[key])


def location(entry: dict[str, Any]) -> str | None:
    """Layer folder and file of an entry (or of the dataset it wraps), if a file."""
    entry = entry.get("dataset", entry)
    filepath = entry.get("filepath")
    if filepath is None:
        return None
    return re.sub(r"^(data|abfs://[^/]+)/", "", str(filepath))


@pytest.mark.parametrize("env", BLOB_ENVS)
def test_blob_catalog_keeps_names_versions_and_layout_of_base(env: str) -> None:
    base, blob = config("base", "catalog"), config(env, "catalog")
    assert set(blob) - set(base) == {"run_info"}  # declared for the Azure ML compiler
    assert set(base) <= set(blob)
    for name, entry in base.items():
        assert bool(blob[name].get("versioned")) == bool(entry.get("versioned")), name
        if name == "champion_release":  # the release folder deploy reads on Blob
            assert location(entry) == "06_models/champion"
            assert location(blob[name]) == "releases/champion"
            continue
        assert location(blob[name]) == location(entry), name
        if location(entry) is not None:
            inner = blob[name].get("dataset", blob[name])
            assert inner["filepath"].startswith("abfs://mnist/"), name
            assert inner["credentials"] == "blob", name


def test_azurite_shares_the_azure_catalog_and_plugin_config() -> None:
    for name in ("catalog.yml", "azureml.yml"):
        assert (ROOT / "conf/azurite" / name).resolve() == (
            ROOT / "conf/azure" / name
        ).resolve()
    raw = yaml.safe_load((ROOT / "conf/azure/catalog.yml").read_text())
    for entry in ("litert_model", "model_card"):  # what serving resolves itself
        assert re.fullmatch(
            r"abfs://\$\{globals:blob\.container\}/06_models/[\w.]+",
            raw[entry]["filepath"],
        )


def test_no_account_key_in_conf_except_azurites_published_one() -> None:
    for path in (ROOT / "conf").rglob("*"):
        if path.is_file() and path.suffix in {".yml", ".yaml"}:
            text = path.read_text()
            assert set(ACCOUNT_KEY.findall(text)) <= {DEV_KEY}, path
            assert "SharedAccessSignature" not in text and "sig=" not in text, path
    creds = yaml.safe_load((ROOT / "conf/azure/credentials.yml").read_text())
    assert creds == {
        "blob": {"account_name": "${oc.env:AZURE_STORAGE_ACCOUNT_NAME}", "anon": False},
        "feedback_db": {
            "con": '${oc.env:DATABASE_URL,""}',
            "auth": "${oc.env:DATABASE_AUTH,entra}",
        },
    }


def test_azure_ml_experiment_is_the_mlflow_experiment() -> None:
    azureml = config("azure", "azureml")
    mlflow_yml = config("azure", "mlflow")
    assert (
        azureml["azure"]["experiment_name"]
        == mlflow_yml["tracking"]["experiment"]["name"]
    )
    assert azureml["azure"]["pipeline_data_passing"] == {"enabled": True}
    assert azureml["azure"]["compute"]["__default__"]["cluster_name"] == "mnist-cluster"


def test_amlignore_keeps_local_state_out_of_the_upload(tmp_path: Path) -> None:
    git = shutil.which("git")
    assert git, "git is needed to read .amlignore with .gitignore rules"
    subprocess.run([git, "init", "-q", str(tmp_path)], check=True)
    shutil.copy(ROOT / ".amlignore", tmp_path / ".gitignore")
    paths = ["conf/local/credentials.yml", "data/01_raw/mnist_full.csv",
             ".venv/bin/python", "mlflow.db", "conf/azure/catalog.yml",
             "src/mnist_mlops/settings.py", "pyproject.toml"]  # fmt: skip
    done = subprocess.run(
        [git, "check-ignore", "--no-index", *paths],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.stdout.split() == paths[:4]


def test_cluster_and_environment_entities_from_conf() -> None:
    resources = load_resources(azureml_config(ROOT, "azure"), "azure")
    cluster = build_cluster(resources.cluster)
    assert (cluster.name, cluster.size, cluster.type) == (
        "mnist-cluster", "STANDARD_DS3_V2", "amlcompute"
    )  # fmt: skip
    assert (cluster.min_instances, cluster.max_instances) == (0, 4)
    assert cluster.idle_time_before_scale_down == 120
    assert cluster.identity.type == "system_assigned"
    built = build_environment(resources.environment, ROOT)
    assert built.name == "mnist-training"
    assert Path(built.build.path) == ROOT / "conf/azure/environment"
    assert (Path(built.build.path) / built.build.dockerfile_path).is_file()
    pushed = build_environment(resources.environment, ROOT, "acr.io/mnist:1", "7")
    assert (pushed.image, pushed.version, pushed.build) == ("acr.io/mnist:1", "7", None)


def test_resources_must_run_on_the_cluster_azureml_names() -> None:
    azureml = azureml_config(ROOT, "azure")
    azureml["azure"]["compute"]["__default__"]["cluster_name"] = "other-cluster"
    with pytest.raises(AzureSetupError, match="is not the cluster 'other-cluster'"):
        load_resources(azureml, "azure")
    azureml["cluster"] = {**azureml["cluster"], "max_instances": -1}
    with pytest.raises(AzureSetupError, match=r"cluster\.max_instances"):
        load_resources(azureml, "azure")


def test_provision_dry_run_prints_both_entities() -> None:
    metadata = bootstrap_project(ROOT)
    result = CliRunner().invoke(
        commands, ["azure", "provision", "--dry-run"], obj=metadata
    )
    assert result.exit_code == 0, result.output
    cluster, environment = [d for d in yaml.safe_load_all(result.output) if d]
    assert cluster["type"] == "amlcompute" and cluster["max_instances"] == 4
    assert environment["name"] == "mnist-training"
    (entry,) = [
        e
        for e in importlib.metadata.entry_points(group="kedro.project_commands")
        if e.value == "mnist_mlops.azure.cli:commands"
    ]
    assert entry.load() is commands


def test_training_image_pins_what_the_tests_run_except_azureml_mlflows_caps() -> None:
    repo = pins(ROOT / "requirements.lock")
    image = pins(IMAGE_LOCK)
    same = ["kedro", "kedro-azureml", "kedro-datasets", "kedro-mlflow", "keras"]
    same += ["tensorflow", "numpy", "adlfs", "azure-ai-ml", "ai-edge-litert"]
    assert {p: image[p] for p in same} == {p: repo[p] for p in same}
    assert "azureml-mlflow" in image
    dockerfile = (ROOT / "conf/azure/environment/Dockerfile").read_text()
    assert "COPY requirements.lock" in dockerfile
