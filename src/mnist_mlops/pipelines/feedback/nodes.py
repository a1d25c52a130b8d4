"""Nodes of feedback: validate labelled records, split a holdout, report live accuracy.

A record is one prediction that received a label (`POST /feedback`). Those
with the stored 784-byte model input are training examples; every one counts
toward the live accuracy of the model version that answered it.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

import numpy as np
import pandas as pd

from mnist_mlops.errors import FeedbackValidationError
from mnist_mlops.params import FeedbackParams, parse

logger = logging.getLogger(__name__)

PARAMS_FILE = "parameters_feedback.yml"
SIDE = 28
INPUT_BYTES = SIDE * SIDE
SHOWN = 5  # request ids named in an error
FIX = (
    "Fix or delete these rows in the feedback store (table `predictions`), "
    "then run `kedro run --pipeline feedback` again"
)


def _ids(frame: pd.DataFrame) -> str:
    ids = frame["request_id"].astype(str).tolist()
    more = f" and {len(ids) - SHOWN} more" if len(ids) > SHOWN else ""
    return ", ".join(repr(i) for i in ids[:SHOWN]) + more


def _as_bytes(value: Any) -> bytes | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return bytes(value)


def validate_feedback(records: pd.DataFrame) -> pd.DataFrame:
    """The labelled records with int labels and bytes inputs, or an error naming rows.

    Checked: every label is an integer 0-9, every stored input is 784 bytes
    (a 28x28 uint8 image), no request id appears twice. Nothing is written
    when a check fails.
    """
    frame = records.copy()
    labels = pd.to_numeric(frame["label"], errors="coerce")
    bad = frame[~labels.isin(range(10))]
    if len(bad):
        raise FeedbackValidationError(
            f"Feedback store: {len(bad)} labelled record(s) have a label outside "
            f"the integers 0-9 (request ids {_ids(bad)}; labels "
            f"{bad['label'].head(SHOWN).tolist()}). {FIX}."
        )
    duplicated = frame[frame["request_id"].duplicated(keep=False)]
    if len(duplicated):
        named = _ids(duplicated.drop_duplicates("request_id"))
        raise FeedbackValidationError(
            f"Feedback store: request id(s) {named} "
            f"appear more than once ({len(duplicated)} rows); each prediction has "
            f"one record. {FIX}."
        )
    frame["input"] = [_as_bytes(v) for v in frame["input"]]
    sizes = frame["input"].map(lambda b: INPUT_BYTES if b is None else len(b))
    wrong = frame[sizes != INPUT_BYTES]
    if len(wrong):
        raise FeedbackValidationError(
            f"Feedback store: {len(wrong)} record(s) hold an input of "
            f"{sorted(set(sizes[sizes != INPUT_BYTES]))[:SHOWN]} bytes, expected "
            f"{INPUT_BYTES} (a 28x28 uint8 image) (request ids {_ids(wrong)}). {FIX}."
        )
    frame["label"] = labels.astype(np.int64)
    frame["digit"] = pd.to_numeric(frame["digit"], errors="coerce")
    logger.info(
        "Feedback store: %d labelled records, %d with their input.",
        len(frame),
        frame["input"].notna().sum(),
    )
    return frame


def in_holdout(request_id: str, fraction: float) -> bool:
    """Whether a record belongs to the holdout: fixed by its id, never by row order.

    A record keeps its side as the store grows, so a holdout example never
    becomes a training example in a later run.
    """
    digest = hashlib.sha256(str(request_id).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def _arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Float32 N x 28 x 28 x 1 images in [0, 1] (as data_processing makes them)."""
    if frame.empty:
        return np.zeros((0, SIDE, SIDE, 1), np.float32), np.zeros(0, np.int64)
    raw = np.frombuffer(b"".join(frame["input"]), np.uint8)
    images = (raw.astype(np.float32) / 255.0).reshape(-1, SIDE, SIDE, 1)
    return images, frame["label"].to_numpy(np.int64)


def split_feedback(
    valid: pd.DataFrame, params: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_holdout, y_holdout) of the records with an input.

    Below `min_examples` all four are empty and training uses MNIST alone.
    """
    cfg = parse(FeedbackParams, params, PARAMS_FILE)
    examples = valid[valid["input"].notna()].sort_values("request_id")
    if len(examples) < cfg.min_examples:
        logger.warning(
            "Only %d labelled feedback example(s) with an input, below "
            "feedback.min_examples %d: no feedback is used, training runs on "
            "MNIST alone.",
            len(examples),
            cfg.min_examples,
        )
        examples = examples.iloc[:0]
    holdout = (
        examples["request_id"]
        .map(lambda i: in_holdout(i, cfg.holdout_fraction))
        .astype(bool)
    )
    x_train, y_train = _arrays(examples[~holdout])
    x_holdout, y_holdout = _arrays(examples[holdout])
    logger.info(
        "Feedback: %d training and %d holdout examples.", len(y_train), len(y_holdout)
    )
    return x_train, y_train, x_holdout, y_holdout


def _metric_name(version: str) -> str:
    return "live_accuracy_" + re.sub(r"[^A-Za-z0-9_.-]", "_", str(version))


def report_feedback(
    valid: pd.DataFrame, y_train: np.ndarray, y_holdout: np.ndarray
) -> tuple[dict[str, Any], dict[str, dict]]:
    """The feedback report (live accuracy per model version) and its MLflow scalars."""
    live = {}
    for version, group in valid.groupby("model_version", sort=True):
        correct = int((group["digit"] == group["label"]).sum())
        live[str(version)] = {
            "labelled": len(group),
            "correct": correct,
            "accuracy": correct / len(group),
        }
    report = {
        "labelled_records": len(valid),
        "records_with_input": int(valid["input"].notna().sum()),
        "training_examples": len(y_train),
        "holdout_examples": len(y_holdout),
        "used_for_training": bool(len(y_train)),
        "live_accuracy": live,
    }
    for version, figures in live.items():
        logger.info(
            "Live accuracy of model %s: %.4f on %d labelled predictions.",
            version,
            figures["accuracy"],
            figures["labelled"],
        )
    scalars = {
        f"feedback_{key}": {"value": float(report[key]), "step": 0}
        for key in ("labelled_records", "training_examples", "holdout_examples")
    }
    scalars |= {
        _metric_name(v): {"value": f["accuracy"], "step": 0} for v, f in live.items()
    }
    return report, scalars
