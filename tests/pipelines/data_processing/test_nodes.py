"""data_processing nodes on tiny tables: validation messages, normalisation, splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mnist_mlops.errors import DataValidationError, ParameterError
from mnist_mlops.pipelines.data_processing.nodes import (
    describe_dataset,
    normalize,
    split_dataset,
    validate_table,
)

PARAMS = {"split": {"official_test_rows": 10}}


def test_valid_table_passes_unchanged(tiny_table: pd.DataFrame) -> None:
    before = tiny_table.copy()
    assert validate_table(tiny_table, PARAMS) is tiny_table
    pd.testing.assert_frame_equal(tiny_table, before)


def test_kaggle_pixel_names_are_accepted(tiny_table: pd.DataFrame) -> None:
    tiny_table.columns = ["label", *[f"pixel{i}" for i in range(784)]]
    validate_table(tiny_table, PARAMS)


def test_wrong_column_count_names_dataset_and_expectation(
    tiny_table: pd.DataFrame,
) -> None:
    with pytest.raises(DataValidationError) as err:
        validate_table(tiny_table.iloc[:, :784], PARAMS)
    assert str(err.value).startswith(
        "Dataset 'mnist_full' has 784 columns, expected 785 (label + 28x28 pixels)"
    )


def test_misnamed_pixel_column_is_reported(tiny_table: pd.DataFrame) -> None:
    tiny_table = tiny_table.rename(columns={"3x5": "oops"})
    with pytest.raises(DataValidationError, match="column 61 is named 'oops'"):
        validate_table(tiny_table, PARAMS)


def test_missing_header_says_the_first_image_became_column_names(
    tiny_table: pd.DataFrame,
) -> None:
    headerless = tiny_table.iloc[1:].copy()
    headerless.columns = [str(v) for v in tiny_table.iloc[0]]  # as read_csv reads it
    with pytest.raises(DataValidationError) as err:
        validate_table(headerless, PARAMS)
    message = str(err.value)
    assert message.startswith("Dataset 'mnist_full' has no header row")
    assert "Add the header `label,1x1,1x2,...,28x28`" in message


def test_text_cells_name_the_column_row_and_value(tiny_table: pd.DataFrame) -> None:
    tiny_table["4x4"] = tiny_table["4x4"].astype(object)
    tiny_table.loc[7, "4x4"] = "12a"
    with pytest.raises(DataValidationError) as err:
        validate_table(tiny_table, PARAMS)
    assert "has text in 1 column(s), first '4x4' (row 7: '12a')" in str(err.value)


def test_label_ten_reports_rows_and_value(tiny_table: pd.DataFrame) -> None:
    tiny_table.loc[[3, 17], "label"] = 10
    with pytest.raises(DataValidationError) as err:
        validate_table(tiny_table, PARAMS)
    message = str(err.value)
    assert "labels outside the integers 0-9 in rows 3, 17" in message
    assert "first bad value: 10" in message


def test_pixel_256_reports_row_column_and_value(tiny_table: pd.DataFrame) -> None:
    tiny_table.loc[5, "2x3"] = 256
    with pytest.raises(DataValidationError) as err:
        validate_table(tiny_table, PARAMS)
    assert "pixels that are not integers 0-255 in rows 5" in str(err.value)
    assert "column '2x3' = 256" in str(err.value)


def test_nan_reports_the_row(tiny_table: pd.DataFrame) -> None:
    tiny_table["1x1"] = tiny_table["1x1"].astype(float)
    tiny_table.loc[7, "1x1"] = np.nan
    with pytest.raises(DataValidationError, match="missing values in rows 7 "):
        validate_table(tiny_table, PARAMS)


def test_many_bad_rows_are_summarised(tiny_table: pd.DataFrame) -> None:
    tiny_table.loc[:, "label"] = -1
    with pytest.raises(DataValidationError, match=r"rows 0, 1, 2, 3, 4 and 35 more"):
        validate_table(tiny_table, PARAMS)


def test_unknown_parameter_fails_with_the_file_name(tiny_table: pd.DataFrame) -> None:
    with pytest.raises(ParameterError, match=r"split\.strategi: Extra inputs"):
        validate_table(tiny_table, {"split": {"strategi": "random"}})


def test_normalize_scales_and_reshapes(tiny_table: pd.DataFrame) -> None:
    images, labels = normalize(tiny_table)
    assert images.shape == (40, 28, 28, 1)
    assert images.dtype == np.float32
    assert labels.dtype == np.int64
    assert images.min() >= 0.0
    assert images.max() <= 1.0
    assert images[0, 0, 1, 0] == pytest.approx(tiny_table.loc[0, "1x2"] / 255)
    np.testing.assert_array_equal(labels, tiny_table["label"])


def _arrays(n: int) -> tuple[np.ndarray, np.ndarray]:
    images = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1)  # value = row index
    return images, np.tile(np.arange(10), n // 10)


def test_random_split_is_stratified_seeded_and_holds_out_official_rows() -> None:
    images, labels = _arrays(200)
    params = {"split": {"strategy": "random", "official_test_rows": 50}}
    first = split_dataset(images, labels, params)
    x_train, _y_train, x_test, y_test, x_off, _y_off = first
    assert (len(x_train), len(x_test), len(x_off)) == (120, 30, 50)
    np.testing.assert_array_equal(x_off.ravel(), np.arange(150, 200))
    assert set(x_train.ravel()).isdisjoint(x_test.ravel())
    assert max(x_train.max(), x_test.max()) < 150  # never trains on official rows
    assert np.bincount(y_test).tolist() == [3] * 10  # stratified
    for a, b in zip(first, split_dataset(images, labels, params), strict=True):
        np.testing.assert_array_equal(a, b)  # seeded


def test_official_split_tests_on_the_last_rows() -> None:
    images, labels = _arrays(100)
    params = {"split": {"strategy": "official", "official_test_rows": 20}}
    x_train, _, x_test, _, x_off, _ = split_dataset(images, labels, params)
    np.testing.assert_array_equal(x_train.ravel(), np.arange(80))
    np.testing.assert_array_equal(x_test, x_off)


def test_sample_size_keeps_proportions() -> None:
    images, labels = _arrays(1000)
    params = {"split": {"official_test_rows": 200, "sample_size": 100}}
    x_train, _, x_test, _, x_off, y_off = split_dataset(images, labels, params)
    assert len(x_train) + len(x_test) + len(x_off) == 100
    assert len(x_off) == 20
    assert x_off.min() >= 800
    assert np.bincount(y_off).tolist() == [2] * 10


def test_too_few_rows_for_the_official_set(tiny_table: pd.DataFrame) -> None:
    with pytest.raises(DataValidationError, match=r"Lower data_processing\.split"):
        validate_table(tiny_table, {"split": {"official_test_rows": 40}})


def test_describe_dataset_fingerprints_content(tiny_table: pd.DataFrame) -> None:
    info = describe_dataset(tiny_table)
    assert info["rows"] == 40
    assert info["class_counts"] == [4] * 10
    tiny_table.loc[0, "1x1"] = (tiny_table.loc[0, "1x1"] + 1) % 256
    assert describe_dataset(tiny_table)["sha256"] != info["sha256"]
