"""The whole project through a real KedroSession on a 2,000-row sample, 1 epoch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro_mlflow.io.metrics import MlflowMetricsHistoryDataset

from mnist_mlops.errors import DataValidationError, QualityGateError
from mnist_mlops.pipeline_registry import register_pipelines
from tests.feedback_store import create_store, records

# A 1-epoch model on 2,000 rows is no candidate: these runs check the plumbing,
# so they open the quality gate (test_failing_quality_gate... keeps it shut).
NO_GATE = {"min_official_test_accuracy": 0, "min_drawn_test_accuracy": 0}
NO_FLOORS = {"official_test_accuracy": 0, "drawn_test_accuracy": 0}
SMALL_TRAINING = {
    "epochs": 1,
    # Its near-tied classes are what LiteRT's quantisation may flip: 90% parity
    # (the training node tests and every full run check it at 99.9%).
    "min_parity_agreement": 0.9,
    "quality_gate": NO_GATE,
    "numbers": {"count": 20, "drawn_count": 10},
}
SMALL_RUN = {
    "data_processing": {"split": {"official_test_rows": 300}},
    "training": SMALL_TRAINING,
    "promotion": {"floors": NO_FLOORS, "min_feedback_holdout": 10},
}
FEEDBACK_ROWS = 150  # labelled predictions in the store, each with its input
TRACKED_METRICS = {
    "test_accuracy",
    "test_loss",
    "official_test_accuracy",
    "drawn_test_accuracy",
    "ece_official_before",
    "ece_official_after",
    "ece_drawn_before",
    "ece_drawn_after",
    "drawn_auto_approved_error_rate",
    "number_test_auto_approved_error_rate",
    "average_confidence",
    "per_class_accuracy_0",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
}


def run_project(path: Path, params: dict, pipeline: str | None = None) -> None:
    """Run the project at `path` as `kedro run --params ...` would."""
    bootstrap_project(path)
    with KedroSession.create(project_path=path, runtime_params=params) as session:
        session.run(pipeline_name=pipeline)


def fill_feedback_store(project: Path, table: pd.DataFrame) -> None:
    """Serving's default SQLite store in the project, with labelled predictions."""
    store = project / "data" / "feedback" / "feedback.db"
    store.parent.mkdir(parents=True, exist_ok=True)
    values = table.tail(FEEDBACK_ROWS).to_numpy(np.uint8)
    images, labels = values[:, 1:].reshape(-1, 28, 28), values[:, 0].astype(int)
    create_store(f"sqlite:///{store}", records(images, labels))


def assert_feedback_and_promotion(catalog: Any, metrics: dict[str, float]) -> None:
    """The store's examples joined training; the first model passed the gate."""
    feedback = catalog.load("feedback_report")
    assert feedback["used_for_training"] is True
    assert feedback["training_examples"] + feedback["holdout_examples"] == 150
    assert len(catalog.load("x_feedback_train")) == feedback["training_examples"]
    assert feedback["live_accuracy"]["2026-11-30T10.00.00.000Z"]["accuracy"] == 1.0
    assert metrics["feedback_training_examples"] == feedback["training_examples"]
    report = catalog.load("promotion_report")
    assert report["decision"] == "promote", report["reason"]
    held = report["samples"]["feedback_holdout_accuracy"]
    assert held == feedback["holdout_examples"]


@pytest.mark.slow
def test_default_pipeline_writes_every_output_and_tracks_the_run(
    project: Path, tmp_path: Path, sample_table: pd.DataFrame
) -> None:
    fill_feedback_store(project, sample_table)
    run_project(project, SMALL_RUN)

    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        catalog = session.load_context().catalog
    # MLflow metric datasets live in the run, checked through MlflowClient below.
    # The champion release (two files and the registry alias) is checked below.
    persisted = [
        name
        for name in register_pipelines()["__default__"].all_outputs()
        if name in catalog.keys()
        and name != "champion_release"
        and not isinstance(catalog.get(name), MlflowMetricsHistoryDataset)
    ]
    assert {
        "x_train",
        "keras_model",
        "litert_model",
        "model_card",
        "metrics",
        "confusion_matrix",
        "training_curves",
        "x_drawn_test",
        "calibration",
        "drawn_examples",
        "x_feedback_train",
        "feedback_report",
        "promotion_report",
    } <= set(persisted)
    assert [name for name in persisted if not catalog.exists(name)] == []

    card = catalog.load("model_card")
    (version_dir,) = (project / "data/06_models/mnist_cnn.tflite").iterdir()
    assert card["version"] == version_dir.name  # serving pairs model and card by it
    # Every output is versioned: one folder per output, named by the run's version.
    files = [p for p in (project / "data").rglob("*") if p.is_file()]
    champion = project / "data/06_models/champion"
    outputs = [
        p
        for p in files
        if p.parent.name not in {"01_raw", "feedback"} and champion not in p.parents
    ]
    assert len(outputs) == len(persisted)
    assert {p.parent.name for p in outputs} == {card["version"]}
    assert {p.name for p in outputs} == {p.parent.parent.name for p in outputs}
    metrics = json.loads(
        (
            project / f"data/08_reporting/metrics.json/{card['version']}/metrics.json"
        ).read_text()
    )
    assert metrics["official_test_samples"] == 300
    assert metrics["official_test_accuracy"] > 0.5
    assert (
        card["metrics"]["official_test_accuracy"] == metrics["official_test_accuracy"]
    )
    assert metrics["drawn_test_samples"] == 300
    assert card["metrics"]["drawn_test_accuracy"] == metrics["drawn_test_accuracy"]
    assert card["metrics"]["review_bands"] == metrics["review_bands"]
    assert metrics["number_test_samples"] == 20
    assert metrics["number_drawn_samples"] == 10
    for key in (
        "number_test_exact",
        "number_test_exact_bound",
        "number_test_review_bands",
        "number_test_digit_accuracy",
        "number_drawn_exact",
        "number_drawn_digit_accuracy",
    ):
        assert card["metrics"][key] == metrics[key]
    assert card["calibration"]["baked_into_model"] is True
    assert card["drift_reference"]["size"] > 0

    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    run = client.get_run(card["mlflow_run_id"])
    assert TRACKED_METRICS <= set(run.data.metrics)
    assert run.data.params["training.epochs"] == "1"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {
        "metrics.json",
        "parity_report.json",
        "confusion_matrix.png",
        "training_curves.png",
        "drawn_examples.png",
        "calibration.json",
        "drift_reference.json",
        "model",
    } <= artifacts
    logged = client.download_artifacts(run.info.run_id, "metrics.json", str(tmp_path))
    assert json.loads(Path(logged).read_text()) == metrics
    (model,) = client.search_model_versions("name='mnist-digit-classifier'")
    assert model.run_id == run.info.run_id
    assert model.tags["deployment"] == "candidate"
    assert model.tags["dataset"].startswith("mnist_full rows=2000 sha256=")
    assert model.tags["drawn_test_accuracy"] == str(metrics["drawn_test_accuracy"])
    assert_feedback_and_promotion(catalog, run.data.metrics)
    alias = client.get_model_version_by_alias("mnist-digit-classifier", "champion")
    assert alias.version == model.version
    assert catalog.load("champion_release")["model_sha256"] == card["model_sha256"]
    assert (
        champion / "mnist_cnn.tflite" / card["version"] / "mnist_cnn.tflite"
    ).is_file()
    assert "promotion_report.json" in artifacts


@pytest.mark.slow
def test_failing_quality_gate_stops_the_run_before_anything_is_registered(
    project: Path,
) -> None:
    shut = {"min_official_test_accuracy": 0.999, "min_drawn_test_accuracy": 0.999}
    params = {**SMALL_RUN, "training": {**SMALL_TRAINING, "quality_gate": shut}}
    with pytest.raises(QualityGateError) as raised:
        run_project(project, params)
    message = str(raised.value)
    assert "Model 'mnist-digit-classifier' failed the quality gate" in message
    assert "official_test_accuracy 0." in message
    assert "is below training.quality_gate.min_official_test_accuracy 0.9990" in message
    assert "not registered as a candidate" in message

    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    assert client.search_model_versions("name='mnist-digit-classifier'") == []
    assert client.search_registered_models() == []
    assert not (project / "data/06_models/model_card.json").exists()
    (run,) = client.search_runs(client.search_experiments()[0].experiment_id)
    assert run.info.status == "FAILED"
    assert "drawn_test_accuracy" in run.data.metrics  # the report is still logged


@pytest.mark.slow
def test_invalid_raw_table_stops_before_anything_is_written(project: Path) -> None:
    raw = project / "data/01_raw/mnist_full.csv"
    lines = raw.read_text().splitlines()
    lines[4] = "10" + lines[4][1:]  # first field of data row 3: label 10
    raw.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataValidationError, match="labels outside the integers 0-9 in rows 3 "
    ):
        run_project(project, SMALL_RUN)
    written = [p for p in (project / "data").rglob("*") if p.is_file()]
    assert written == [raw]
