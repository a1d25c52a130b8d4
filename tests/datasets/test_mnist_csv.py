"""The raw CSV dataset: a damaged file fails naming the file, the line and the fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from mnist_mlops.datasets import MnistCSVDataset, PackagedMnistCSVDataset
from mnist_mlops.datasets.mnist_csv import find_damage
from mnist_mlops.errors import DataValidationError, RawFileError
from tests.damage import DAMAGES, drop_header


@pytest.fixture
def csv_file(tmp_path: Path, sample_table: pd.DataFrame) -> Path:
    """The 2,000-row sample written as the raw CSV."""
    path = tmp_path / "mnist_full.csv"
    sample_table.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "damage",
    [d for name, d in DAMAGES.items() if d is not drop_header],
    ids=[name for name, d in DAMAGES.items() if d is not drop_header],
)
def test_damaged_csv_names_file_line_and_fix(
    csv_file: Path, damage: Callable[[Path], str]
) -> None:
    expected = damage(csv_file)
    dataset = PackagedMnistCSVDataset(
        filepath=str(csv_file), load_args={"engine": "pyarrow"}
    )
    with pytest.raises(RawFileError) as err:
        dataset.load()
    message = str(err.value)
    assert message.startswith(f"Raw CSV '{csv_file}' cannot be read: {expected}")
    assert message.endswith("Or point the catalog entry at a good copy.")
    assert "Delete it: the next run writes it again from the MNIST" in message
    assert isinstance(err.value, DataValidationError)  # the project's error type
    assert isinstance(err.value.__cause__, pd.errors.ParserError)


def test_headerless_csv_loads_for_the_validation_node_to_reject(csv_file: Path) -> None:
    drop_header(csv_file)  # parses: the first image becomes the column names
    table = MnistCSVDataset(filepath=str(csv_file)).load()
    assert table.shape == (1999, 785)


def test_empty_csv_says_it_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(RawFileError, match="cannot be read: the file is empty"):
        MnistCSVDataset(filepath=str(path)).load()


def test_find_damage_reports_the_first_bad_line_only() -> None:
    lines = [b"label,a,b\n", b"1,2,3\n", b"1,2\n", b"1,2,3,4\n"]
    assert (
        find_damage(lines) == "line 3 has 2 fields but the header has 3 (a ragged row)"
    )
    assert find_damage(lines[:2]) is None
    assert find_damage([b"label,a,b\n", b"\n", b"1,2,3"]) is None  # blank lines skip
