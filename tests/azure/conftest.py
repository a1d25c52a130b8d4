"""Azure fixtures: a real Azurite process, and projects whose data lives on it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.azure.azurite import AZURITE, INSTALL_HINT, Azurite, running_azurite
from tests.conftest import ROOT

RAW_BLOB = "01_raw/mnist_full.csv"
# One epoch on a small sample gives a model with many near-ties, on which the
# default dynamic-range quantisation flips ~0.5% of the answers and the 99.9%
# parity check rightly fails. These tests check the Azure plumbing, so they
# export unquantised and keep the parity check at its full strictness.
# Nor is such a model a candidate: the quality gate is opened for these runs.
SMALL_RUN = {
    "data_processing": {"split": {"official_test_rows": 300}},
    "training": {
        "epochs": 1,
        "export": {"quantization": "none"},
        "numbers": {"count": 20, "drawn_count": 10},
        "quality_gate": {"min_official_test_accuracy": 0, "min_drawn_test_accuracy": 0},
    },
}


def blob_container(env: str = "azurite") -> str:
    """The container of the Blob catalog, as conf/<env>/globals.yml names it."""
    globals_ = yaml.safe_load((ROOT / "conf" / env / "globals.yml").read_text())
    return str(globals_["blob"]["container"])


def copy_project(dest: Path) -> Path:
    """Copy conf (without conf/local) and pyproject.toml: a project with no data."""
    shutil.copytree(
        ROOT / "conf", dest / "conf", ignore=shutil.ignore_patterns("local")
    )
    (dest / "conf" / "local").mkdir()
    shutil.copy(ROOT / "pyproject.toml", dest)
    (dest / "src").mkdir()  # the package comes from the (editable) install
    return dest


def upload_raw(azurite: Azurite, table: pd.DataFrame) -> None:
    """Create the catalog's container and put `table` there as the raw CSV."""
    container = azurite.service.create_container(blob_container())
    container.upload_blob(RAW_BLOB, table.to_csv(index=False).encode())


@pytest.fixture
def azurite(tmp_path: Path) -> Iterator[Azurite]:
    """A fresh, empty Azurite on a free loopback port; stopped after the test."""
    if not AZURITE.exists():
        pytest.fail(INSTALL_HINT)
    workdir = tmp_path / "azurite"
    workdir.mkdir()
    with running_azurite(workdir) as emulator:
        yield emulator


@pytest.fixture
def blob_project(
    project: Path,
    azurite: Azurite,
    sample_table: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """`project` with its raw CSV on Azurite only, and `--env azurite` aimed there."""
    monkeypatch.setenv("AZURITE_BLOB_PORT", str(azurite.port))
    upload_raw(azurite, sample_table)
    (project / "data" / RAW_BLOB).unlink()
    return project
