"""The feedback pipeline on a real SQLite store with serving's table."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.runner import SequentialRunner

from mnist_mlops.datasets import FeedbackStoreDataset
from mnist_mlops.errors import FeedbackValidationError
from mnist_mlops.pipelines.feedback import create_pipeline
from mnist_mlops.pipelines.feedback.nodes import (
    in_holdout,
    split_feedback,
    validate_feedback,
)
from tests.feedback_store import create_store, records
from tests.pipelines.feedback.postgres import postgres_server

SQL = (
    "SELECT request_id, model_version, digit, label, input FROM predictions "
    "WHERE label IS NOT NULL"
)
PARAMS = {"min_examples": 20, "holdout_fraction": 0.25}


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def _store(path: Path, rows: list[dict]) -> FeedbackStoreDataset:
    url = f"sqlite:///{path}"
    create_store(url, rows)
    return FeedbackStoreDataset(sql=SQL, credentials={"con": url})


class KeptDataset(MemoryDataset):
    """A MemoryDataset that the runner does not empty after its last reader."""

    def _release(self) -> None:
        pass


def _run(dataset: FeedbackStoreDataset, params: dict = PARAMS) -> dict:
    catalog = DataCatalog(
        {"feedback_records": dataset, "params:feedback": MemoryDataset(params)}
    )
    outputs = create_pipeline().all_outputs() - {"feedback_valid"}
    for name in outputs:
        catalog[name] = KeptDataset()
    SequentialRunner().run(create_pipeline(), catalog)
    return {name: catalog.load(name) for name in outputs}


def test_labelled_records_become_arrays_a_stable_holdout_and_live_accuracy(
    tmp_path: Path,
) -> None:
    images, labels = _images(120), np.arange(120) % 10
    wrong = labels.copy()
    wrong[:30] = (wrong[:30] + 1) % 10  # model A got 30 of 120 wrong
    rows = records(images, labels, wrong, model_version="A")
    rows += records([None] * 40, np.arange(40) % 10, model_version="B", prefix="b")
    out = _run(_store(tmp_path / "feedback.db", rows))

    x_train, x_holdout = out["x_feedback_train"], out["x_feedback_holdout"]
    assert len(x_train) + len(x_holdout) == 120  # only rows with an input
    assert x_train.dtype == np.float32
    assert x_train.shape[1:] == (28, 28, 1)
    assert 10 < len(x_holdout) < 50  # ~25%
    held = {f"req-{i:06d}" for i in range(120) if in_holdout(f"req-{i:06d}", 0.25)}
    assert len(held) == len(x_holdout)
    first_held = int(min(held).removeprefix("req-"))
    assert np.array_equal(x_holdout[0, ..., 0], images[first_held] / np.float32(255))
    assert out["y_feedback_holdout"][0] == labels[first_held]

    report = out["feedback_report"]
    assert report["labelled_records"] == 160
    assert report["records_with_input"] == 120
    assert report["used_for_training"] is True
    assert report["live_accuracy"]["A"] == {
        "labelled": 120,
        "correct": 90,
        "accuracy": 0.75,
    }
    assert report["live_accuracy"]["B"]["accuracy"] == 1.0  # no input, still counted
    assert out["feedback_metrics_mlflow"]["live_accuracy_A"]["value"] == 0.75


def test_holdout_membership_depends_on_the_id_alone() -> None:
    ids = [f"id-{i}" for i in range(2000)]
    first = [in_holdout(i, 0.2) for i in ids]
    assert first == [in_holdout(i, 0.2) for i in reversed(ids)][::-1]
    assert 0.17 < np.mean(first) < 0.23


@pytest.mark.parametrize("missing", ["file", "table"])
def test_no_store_yet_is_no_feedback_and_empty_arrays(
    tmp_path: Path, missing: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "feedback.db"
    if missing == "table":
        import sqlite3  # noqa: PLC0415 - an empty database file, no table

        sqlite3.connect(path).close()
    dataset = FeedbackStoreDataset(sql=SQL, credentials={"con": f"sqlite:///{path}"})
    with caplog.at_level(logging.INFO):
        out = _run(dataset)
    assert "No feedback yet" in caplog.text
    assert "training runs on MNIST alone" in caplog.text
    assert out["x_feedback_train"].shape == (0, 28, 28, 1)
    assert out["y_feedback_holdout"].shape == (0,)
    assert out["feedback_report"]["used_for_training"] is False
    assert path.exists() == (missing == "table")  # reading never creates a store


def test_too_few_examples_are_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = records(_images(19), np.arange(19) % 10)
    with caplog.at_level(logging.INFO):
        out = _run(_store(tmp_path / "feedback.db", rows))
    assert "Only 19 labelled feedback example(s)" in caplog.text
    assert "below feedback.min_examples 20" in caplog.text
    assert len(out["x_feedback_train"]) == len(out["x_feedback_holdout"]) == 0
    assert out["feedback_report"]["labelled_records"] == 19  # still live accuracy


def _frame(rows: list[dict]) -> pd.DataFrame:
    columns = ["request_id", "model_version", "digit", "label", "input"]
    return pd.DataFrame(rows)[columns]


@pytest.mark.parametrize(
    ("label", "shown"),
    [(10, "[10]"), (-1, "[-1]"), ("seven", "['seven']"), (3.5, "[3.5]")],
)
def test_a_label_outside_0_to_9_stops_the_run_naming_the_row(
    label: object, shown: str
) -> None:
    rows = records(_images(30), np.arange(30) % 10)
    rows[7]["label"] = label
    # Serving's migration forbids such labels (CHECK 0-9); a store without that
    # constraint, or an older one, may still hold them.
    with pytest.raises(FeedbackValidationError) as err:
        validate_feedback(_frame(rows))
    message = str(err.value)
    assert "label outside the integers 0-9" in message
    assert "'req-000007'" in message
    assert f"labels {shown}" in message
    assert "Fix or delete these rows" in message


def test_a_label_given_as_text_digit_is_the_digit(tmp_path: Path) -> None:
    rows = records(_images(30), np.arange(30) % 10)
    rows[3]["label"] = "7"  # SQLite's INTEGER affinity stores 7
    out = _run(_store(tmp_path / "feedback.db", rows), {**PARAMS, "min_examples": 1})
    assert (
        sorted(
            np.concatenate([out["y_feedback_train"], out["y_feedback_holdout"]])
        ).count(7)
        == 4
    )


@pytest.mark.parametrize("size", [783, 785, 0, 28 * 28 * 4, 10_000_000])
def test_an_input_that_is_not_784_bytes_stops_the_run(size: int) -> None:
    rows = records(_images(5), np.arange(5))
    rows[2]["input"] = b"\x01" * size
    with pytest.raises(FeedbackValidationError) as err:
        validate_feedback(_frame(rows))
    assert f"hold an input of [{size}] bytes, expected 784" in str(err.value)
    assert "'req-000002'" in str(err.value)
    assert len(str(err.value)) < 400  # a 10 MB input is named, not printed


def test_duplicate_request_ids_stop_the_run() -> None:
    rows = records(_images(8), np.arange(8)) * 2
    with pytest.raises(FeedbackValidationError) as err:
        validate_feedback(_frame(rows))
    assert "appear more than once (16 rows)" in str(err.value)
    assert "'req-000000', 'req-000001'" in str(err.value)
    assert "and 3 more" in str(err.value)


def test_invalid_split_parameters_name_the_file() -> None:
    valid = validate_feedback(_frame(records(_images(3), np.arange(3))))
    with pytest.raises(Exception, match=r"parameters_feedback.yml: holdout_fraction"):
        split_feedback(valid, {"holdout_fraction": 1.5})


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_store_is_an_error_not_an_empty_store() -> None:
    url = f"postgresql+psycopg://mnist:secret@127.0.0.1:{_closed_port()}/feedback"
    dataset = FeedbackStoreDataset(
        sql=SQL, credentials={"con": url, "connect_args": {"connect_timeout": 2}}
    )
    with pytest.raises(DatasetError) as err:
        dataset.load()
    message = str(err.value)
    assert "Feedback store postgresql+psycopg://mnist:***@127.0.0.1" in message
    assert "secret" not in message
    assert "Check that the database is running" in message
    assert "Set DATABASE_URL" in message


@pytest.mark.parametrize("con", ["", "none", " NONE "])
def test_no_connection_string_is_no_feedback_with_a_warning(
    caplog: pytest.LogCaptureFixture, con: str
) -> None:
    dataset = FeedbackStoreDataset(sql=SQL, credentials={"con": con})
    with caplog.at_level(logging.WARNING):
        assert dataset.load().empty
    assert "No feedback store is configured" in caplog.text
    assert "Set DATABASE_URL" in caplog.text


def test_the_store_on_a_real_postgresql_then_the_server_stopped() -> None:
    rows = records(_images(40), np.arange(40) % 10, model_version="A")
    rows[0]["input"] = None
    with postgres_server() as server:
        create_store(server.url, rows)
        plain = server.url.replace("postgresql+psycopg://", "postgresql://")
        dataset = FeedbackStoreDataset(  # the URL as serving takes it
            sql=SQL,
            credentials={"con": plain, "connect_args": {"connect_timeout": 2}},
        )
        out = _run(dataset)
        assert len(out["x_feedback_train"]) + len(out["x_feedback_holdout"]) == 39
        assert out["feedback_report"]["live_accuracy"]["A"]["labelled"] == 40
        server.stop()  # the database goes away between two runs
        with pytest.raises(DatasetError) as err:
            dataset.load()
    assert f"Feedback store {server.url}" in str(err.value)
    assert "Check that the database is running" in str(err.value)


def test_an_sql_looking_request_id_is_only_data(tmp_path: Path) -> None:
    rows = records(_images(25), np.arange(25) % 10)
    rows[4]["request_id"] = "x'); DROP TABLE predictions; --"
    dataset = _store(tmp_path / "feedback.db", rows)
    out = _run(dataset, {**PARAMS, "min_examples": 1})
    assert out["feedback_report"]["labelled_records"] == 25
    assert len(dataset.load()) == 25  # the table is still there
