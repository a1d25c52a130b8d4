"""Shared fixtures: real MNIST samples and a throw-away copy of the project."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from mnist_mlops.datasets.packaged_mnist import (
    locate_packaged_mnist,
    read_packaged_mnist,
)

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_TRAIN_ROWS = 1700
SAMPLE_OFFICIAL_ROWS = 300
SERVING_FIXTURES = ROOT / "serving" / "tests" / "fixtures"


def _end_mlflow_runs() -> None:
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture(autouse=True)
def no_active_mlflow_run() -> Iterator[None]:
    """No MLflow run leaks into or out of a test.

    kedro-mlflow (`nested: true`) re-opens its run before every node, so an
    in-process `kedro run` leaves it on MLflow's stack, and the next session
    would log into that run instead of starting its own.
    """
    _end_mlflow_runs()
    yield
    _end_mlflow_runs()


@pytest.fixture(scope="session")
def mnist_table() -> pd.DataFrame:
    """The full 70,000-row table from the packaged MNIST (read once)."""
    return read_packaged_mnist(locate_packaged_mnist())


@pytest.fixture(scope="session")
def sample_table(mnist_table: pd.DataFrame) -> pd.DataFrame:
    """2,000 real rows: the first 1,700 training rows and the last 300 test rows."""
    return pd.concat(
        [mnist_table.head(SAMPLE_TRAIN_ROWS), mnist_table.tail(SAMPLE_OFFICIAL_ROWS)],
        ignore_index=True,
    )


@pytest.fixture
def tiny_table() -> pd.DataFrame:
    """40 synthetic rows, 4 per digit, in the `label,1x1..28x28` layout."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(40, 784), dtype=np.int64)
    table = pd.DataFrame(
        pixels, columns=[f"{r}x{c}" for r in range(1, 29) for c in range(1, 29)]
    )
    table.insert(0, "label", np.tile(np.arange(10), 4))
    return table


def copy_project(path: Path, raw_table: pd.DataFrame) -> Path:
    """Copy conf, pyproject and notebooks to `path`, with `raw_table` as the raw CSV."""
    shutil.copytree(
        ROOT / "conf", path / "conf", ignore=shutil.ignore_patterns("local")
    )
    (path / "conf" / "local").mkdir()
    shutil.copy(ROOT / "pyproject.toml", path)
    (path / "src").mkdir()  # the package comes from the (editable) install
    shutil.copytree(ROOT / "notebooks", path / "notebooks")
    raw = path / "data" / "01_raw" / "mnist_full.csv"
    raw.parent.mkdir(parents=True)
    raw_table.to_csv(raw, index=False)
    return path


@pytest.fixture
def project(
    tmp_path: Path, sample_table: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A copy of the project (conf, pyproject, notebooks) whose raw CSV is the sample.

    MLflow tracks into the copy's own SQLite file, so tests never touch the
    developer's mlflow.db or data/.
    """
    path = copy_project(tmp_path / "project", sample_table)
    monkeypatch.chdir(path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{path / 'mlflow.db'}")
    monkeypatch.delenv("DATABASE_URL", raising=False)  # the copy's own feedback store
    return path


@pytest.fixture(scope="session")
def model_bytes() -> bytes:
    """Serving's committed fixture export: a small LiteRT model of the seed CNN."""
    return next(
        (SERVING_FIXTURES / "model").glob("mnist_cnn.tflite/*/*.tflite")
    ).read_bytes()
