"""The project's catalog: a run loads what it saved, though another run saved later."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from kedro.framework.startup import bootstrap_project

from mnist_mlops.azure.versioning import SAVE_VERSION_ENV
from mnist_mlops.catalog import RunVersionedDataCatalog
from mnist_mlops.pipeline_registry import register_pipelines
from tests.conftest import ROOT

V1, V2, V3 = (f"2026-0{m}-01T00.00.00.000Z" for m in (1, 2, 3))


def config(folder: Path) -> dict:
    """A versioned `.npy` entry and a plain JSON entry under `folder`."""
    return {
        "x": {"type": "mnist_mlops.datasets.NpyDataset",
              "filepath": str(folder / "x.npy"), "versioned": True},
        "plain": {"type": "json.JSONDataset", "filepath": str(folder / "p.json")},
    }  # fmt: skip


def run_catalog(folder: Path, version: str) -> RunVersionedDataCatalog:
    """The catalog of a run that started at `version`."""
    catalog = RunVersionedDataCatalog.from_config(config(folder), save_version=version)
    assert isinstance(catalog, RunVersionedDataCatalog)
    return catalog


def test_a_run_loads_its_own_save_though_another_run_saved_a_newer_one(
    tmp_path: Path,
) -> None:
    older, newer = run_catalog(tmp_path, V1), run_catalog(tmp_path, V2)
    newer.save("x", np.array([2]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Kedro's "did not match" warning would fail
        older.save("x", np.array([1]))  # saved after the newer run's, older version
    newer.save("plain", {"run": 2})
    assert older.load("x").tolist() == [1]
    assert newer.load("x").tolist() == [2]
    assert older.load("x", version=V2).tolist() == [2]  # an explicit version wins
    assert sorted(p.name for p in (tmp_path / "x.npy").iterdir()) == [V1, V2]


def test_a_dataset_the_run_did_not_save_loads_the_newest_version(
    tmp_path: Path,
) -> None:
    run_catalog(tmp_path, V1).save("x", np.array([1]))
    run_catalog(tmp_path, V2).save("x", np.array([2]))
    resumed = run_catalog(tmp_path, V3)  # e.g. `kedro run --from-nodes ...`
    assert resumed.load("x").tolist() == [2]
    assert resumed.exists("x")


def test_job_version_pins_every_versioned_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = {
        "card": {"type": "json.JSONDataset", "filepath": str(tmp_path / "card.json"),
                 "versioned": True},
    }  # fmt: skip
    RunVersionedDataCatalog.from_config(entries, save_version=V2).save("card", "newer")
    monkeypatch.setenv(SAVE_VERSION_ENV, V1)
    step = RunVersionedDataCatalog.from_config(entries, save_version="ignored")
    step.save("card", "this job")
    assert (tmp_path / "card.json" / V1 / "card.json").is_file()
    later_step = RunVersionedDataCatalog.from_config(entries)  # a step of the same job
    assert later_step.load("card") == "this job"  # the job's version, not the newest
    override = RunVersionedDataCatalog.from_config(entries, load_versions={"card": V2})
    assert override.load("card") == "newer"


@pytest.mark.parametrize("env", ["base", "azure"])
def test_every_file_output_of_the_pipeline_is_versioned(env: str) -> None:
    entries = yaml.safe_load((ROOT / "conf" / env / "catalog.yml").read_text())
    bootstrap_project(ROOT)
    outputs = register_pipelines()["__default__"].all_outputs()
    files = [name for name in outputs if "filepath" in entries.get(name, {})]
    assert len(files) == 28
    # The champion release keeps its own <file>/<version>/ folders (the promoted
    # model's version), written only when the promotion gate promotes.
    unversioned = [name for name in files if not entries[name].get("versioned")]
    assert unversioned == ["champion_release"]
