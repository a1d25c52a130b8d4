"""Our file datasets: round trips, versioning and all-or-nothing writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from kedro.io.core import DatasetError, Version

from mnist_mlops.datasets import BytesDataset, JsonDataset, NpyDataset


def test_npy_round_trip_keeps_dtype_and_shape(tmp_path: Path) -> None:
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    dataset = NpyDataset(filepath=str(tmp_path / "a" / "x.npy"))
    dataset.save(data)
    loaded = dataset.load()
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, data)


def test_failed_save_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    dataset = NpyDataset(filepath=str(path))
    dataset.save(np.ones(3))
    with pytest.raises(DatasetError, match=r"x\.npy' got list"):
        dataset.save([1, 2, 3])
    np.testing.assert_array_equal(dataset.load(), np.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]


def test_object_arrays_are_refused_on_save(tmp_path: Path) -> None:
    dataset = NpyDataset(filepath=str(tmp_path / "x.npy"))
    with pytest.raises(DatasetError):
        dataset.save(np.array([{"a": 1}], dtype=object))
    assert not (tmp_path / "x.npy").exists()


def test_versioned_bytes_keep_every_version(tmp_path: Path) -> None:
    path = str(tmp_path / "model.tflite")
    BytesDataset(filepath=path, version=Version(None, "2026-01-01T00.00.00.000Z")).save(
        b"old"
    )
    BytesDataset(filepath=path, version=Version(None, "2026-01-02T00.00.00.000Z")).save(
        b"new"
    )
    assert BytesDataset(filepath=path, version=Version(None, None)).load() == b"new"
    old = Version("2026-01-01T00.00.00.000Z", None)
    assert BytesDataset(filepath=path, version=old).load() == b"old"
    assert len(list((tmp_path / "model.tflite").iterdir())) == 2


def test_json_round_trip_and_a_failed_save_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    dataset = JsonDataset(filepath=str(path), save_args={"indent": 2})
    dataset.save({"name": "mnist", "accuracy": 0.99})
    assert dataset.load() == {"name": "mnist", "accuracy": 0.99}
    assert path.read_text().startswith('{\n  "name"')
    with pytest.raises(DatasetError, match="not JSON serializable"):
        dataset.save({"model": object()})
    assert dataset.load() == {"name": "mnist", "accuracy": 0.99}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json"]
