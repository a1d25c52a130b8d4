"""Feedback stores for the tests, made by serving's own migration (the contract)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
from mnist_serving.store.migrate import upgrade
from mnist_serving.store.schema import predictions
from sqlalchemy import create_engine, insert


def records(
    images: np.ndarray,
    labels: np.ndarray,
    digits: np.ndarray | None = None,
    model_version: str = "2026-11-30T10.00.00.000Z",
    prefix: str = "req",
) -> list[dict]:
    """Labelled prediction rows: 28x28 uint8 `images` (None drops the input)."""
    now = datetime.now(UTC)
    digits = labels if digits is None else digits
    rows = []
    for i, (image, label, digit) in enumerate(zip(images, labels, digits, strict=True)):
        probs = np.full(10, 0.01)
        probs[int(digit)] = 0.91
        rows.append(
            {
                "request_id": f"{prefix}-{i:06d}",
                "created_at": now,
                "model_version": model_version,
                "client_id": "bank-a",
                "digit": int(digit),
                "confidence": 0.91,
                "probabilities": json.dumps(probs.tolist()),
                "review": "secondary_verification",
                "input": None if image is None else np.asarray(image, "u1").tobytes(),
                "label": int(label),
                "labelled_at": now,
                "labelled_by": "reviewer-1",
            }
        )
    return rows


def create_store(url: str, rows: list[dict] | None = None) -> None:
    """Create the table at `url` with serving's own migration; insert `rows`."""
    engine = create_engine(url)
    upgrade(engine)
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(predictions), rows)
    engine.dispose()
