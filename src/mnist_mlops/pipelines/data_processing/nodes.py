"""Nodes of data_processing: pure functions from the raw table to split arrays."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from mnist_mlops.errors import DataValidationError
from mnist_mlops.modeling.serving_view import drawn_inputs
from mnist_mlops.params import DataProcessingParams, SplitParams, parse

from .validation import N_CLASSES, SIDE, check_columns, check_values

logger = logging.getLogger(__name__)

DATASET_NAME = "mnist_full"
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def validate_table(raw: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Check layout and values of the raw table; return it unchanged if valid."""
    cfg = parse(DataProcessingParams, params, "parameters_data_processing.yml")
    if raw.empty:
        raise DataValidationError(
            f"Dataset '{DATASET_NAME}' has no rows. Point it at a non-empty CSV."
        )
    check_columns(raw, DATASET_NAME)
    check_values(raw, DATASET_NAME, cfg.max_reported_bad_rows)
    if len(raw) <= cfg.split.official_test_rows:
        raise DataValidationError(
            f"Dataset '{DATASET_NAME}' has {len(raw)} rows, but its last "
            f"{cfg.split.official_test_rows} are taken as the official test set. "
            "Lower data_processing.split.official_test_rows or use more rows."
        )
    logger.info("Dataset '%s' is valid: %d rows.", DATASET_NAME, len(raw))
    return raw


def describe_dataset(table: pd.DataFrame) -> dict[str, Any]:
    """Fingerprint of the validated table, recorded in the model card and registry."""
    labels = table["label"].to_numpy()
    digest = hashlib.sha256(np.ascontiguousarray(table.to_numpy(np.uint8))).hexdigest()
    return {
        "name": DATASET_NAME,
        "rows": len(table),
        "sha256": digest,
        "class_counts": np.bincount(labels, minlength=N_CLASSES).tolist(),
    }


def normalize(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Scale pixels to float32 in [0, 1] and reshape them to N x 28 x 28 x 1."""
    values = table.to_numpy(dtype=np.uint8)
    images = (values[:, 1:].astype(np.float32) / 255.0).reshape(-1, SIDE, SIDE, 1)
    return images, values[:, 0].astype(np.int64)


def _sample(n_rows: int, labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of a stratified, seeded sample of `size` rows (all rows if more)."""
    index = np.arange(n_rows)
    if size >= n_rows:
        return index
    picked, _ = train_test_split(
        index, train_size=size, random_state=seed, stratify=labels
    )
    return np.sort(picked)


def split_dataset(
    images: np.ndarray, labels: np.ndarray, params: dict[str, Any]
) -> Arrays:
    """Split into train, test and official-test arrays.

    The last `official_test_rows` rows (the official MNIST test set when the table
    keeps the official order) are always held out, so `official_test_accuracy` is
    never measured on images the model trained on. `random` splits the remaining
    rows 80/20, stratified and seeded; `official` trains on all of them and tests
    on the official set. `sample_size` keeps a stratified sample (smoke runs).
    """
    cfg: SplitParams = parse(
        DataProcessingParams, params, "parameters_data_processing.yml"
    ).split
    dev = len(labels) - cfg.official_test_rows
    x_dev, y_dev = images[:dev], labels[:dev]
    x_off, y_off = images[dev:], labels[dev:]
    if cfg.sample_size is not None:
        off_size = max(N_CLASSES, round(cfg.sample_size * len(y_off) / len(labels)))
        keep = _sample(dev, y_dev, cfg.sample_size - off_size, cfg.seed)
        keep_off = _sample(len(y_off), y_off, off_size, cfg.seed)
        x_dev, y_dev, x_off, y_off = (
            x_dev[keep],
            y_dev[keep],
            x_off[keep_off],
            y_off[keep_off],
        )
    if cfg.strategy == "official":
        return x_dev, y_dev, x_off, y_off, x_off, y_off
    x_train, x_test, y_train, y_test = train_test_split(
        x_dev, y_dev, test_size=cfg.test_size, random_state=cfg.seed, stratify=y_dev
    )
    logger.info(
        "Split: %d train, %d test, %d official test.",
        len(y_train),
        len(y_test),
        len(y_off),
    )
    return x_train, y_train, x_test, y_test, x_off, y_off


def render_drawn_test(
    x_official: np.ndarray, y_official: np.ndarray, params: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """The official test digits drawn anew and prepared as serving prepares uploads.

    Each digit is redrawn on a 280x280 canvas (pen or scanner, see
    `mnist_mlops.modeling.drawn`), encoded as PNG or JPEG, and decoded by the
    serving package's own preprocessing into the 28x28 input the model sees.
    """
    cfg = parse(DataProcessingParams, params, "parameters_data_processing.yml")
    drawn = drawn_inputs(x_official, cfg.drawn.seed)
    logger.info(
        "Rendered %d drawn test digits (seed %d) through serving's preprocessing.",
        len(drawn),
        cfg.drawn.seed,
    )
    return drawn, y_official.copy()
