"""Checks that a raw table has the MNIST CSV layout and values."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mnist_mlops.errors import DataValidationError

SIDE = 28
N_PIXELS = SIDE * SIDE
N_CLASSES = 10
MAX_PIXEL = 255
# The two CSV layouts in the wild: `label,1x1..28x28` (mnist_full.csv, "MNIST in
# CSV") and `label,pixel0..pixel783` (Kaggle "Digit Recognizer").
PIXEL_LAYOUTS = {
    "1x1..28x28": [f"{r}x{c}" for r in range(1, SIDE + 1) for c in range(1, SIDE + 1)],
    "pixel0..pixel783": [f"pixel{i}" for i in range(N_PIXELS)],
}


def _rows(mask: np.ndarray, limit: int) -> str:
    bad = np.flatnonzero(mask)
    shown = ", ".join(str(i) for i in bad[:limit])
    more = f" and {len(bad) - limit} more" if len(bad) > limit else ""
    return f"rows {shown}{more}"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_columns(table: pd.DataFrame, name: str) -> None:
    """Fail unless the table is `label` plus 784 pixel columns of a known layout."""
    columns = [str(c).strip() for c in table.columns]
    if all(_is_number(c) for c in columns):
        raise DataValidationError(
            f"Dataset '{name}' has no header row: its first line holds numbers "
            f"({', '.join(columns[:4])}, ...), so the first image was read as "
            "column names. Add the header `label,1x1,1x2,...,28x28` (or "
            "`label,pixel0,...,pixel783`) as the first line of the CSV."
        )
    if len(columns) != N_PIXELS + 1:
        raise DataValidationError(
            f"Dataset '{name}' has {len(columns)} columns, expected {N_PIXELS + 1} "
            f"(label + {SIDE}x{SIDE} pixels). Point the catalog entry at an MNIST "
            "CSV with a header row."
        )
    if columns[0] != "label":
        raise DataValidationError(
            f"Dataset '{name}' starts with column '{columns[0]}', expected 'label'."
        )
    pixels = columns[1:]
    if pixels not in PIXEL_LAYOUTS.values():
        first_bad = next(
            (i, c)
            for i, c in enumerate(pixels)
            if c
            not in (
                PIXEL_LAYOUTS["1x1..28x28"][i],
                PIXEL_LAYOUTS["pixel0..pixel783"][i],
            )
        )
        raise DataValidationError(
            f"Dataset '{name}' pixel column {first_bad[0] + 1} is named "
            f"'{first_bad[1]}'; expected one of the layouts "
            f"{', '.join(PIXEL_LAYOUTS)} in row-major order."
        )


def check_values(table: pd.DataFrame, name: str, limit: int) -> None:
    """Fail on text or missing values, labels outside 0-9 or pixels outside 0-255."""
    text = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if text:
        cells = table[text[0]]
        not_numbers = pd.to_numeric(cells, errors="coerce").isna() & cells.notna()
        row = int(not_numbers.argmax())
        raise DataValidationError(
            f"Dataset '{name}' has text in {len(text)} column(s), first '{text[0]}' "
            f"(row {row}: {cells.iloc[row]!r}). Every cell must hold an integer."
        )
    values = table.to_numpy(dtype=np.float64, na_value=np.nan)
    missing = np.isnan(values).any(axis=1)
    if missing.any():
        raise DataValidationError(
            f"Dataset '{name}' has missing values in {_rows(missing, limit)} "
            "(0-based data rows). Every cell must hold an integer."
        )
    labels, pixels = values[:, 0], values[:, 1:]
    bad_label = (labels != np.round(labels)) | (labels < 0) | (labels >= N_CLASSES)
    if bad_label.any():
        first = labels[np.argmax(bad_label)]
        raise DataValidationError(
            f"Dataset '{name}' has labels outside the integers 0-9 in "
            f"{_rows(bad_label, limit)} (first bad value: {first:g})."
        )
    bad_pixel = (
        (pixels != np.round(pixels)) | (pixels < 0) | (pixels > MAX_PIXEL)
    ).any(axis=1)
    if bad_pixel.any():
        row = int(np.argmax(bad_pixel))
        col = int(
            np.argmax(
                (pixels[row] != np.round(pixels[row]))
                | (pixels[row] < 0)
                | (pixels[row] > MAX_PIXEL)
            )
        )
        raise DataValidationError(
            f"Dataset '{name}' has pixels that are not integers 0-255 in "
            f"{_rows(bad_pixel, limit)} (first: row {row}, column "
            f"'{table.columns[col + 1]}' = {pixels[row, col]:g})."
        )
