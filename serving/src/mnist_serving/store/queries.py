"""The store's SQL, as plain blocking functions run in worker threads.

Every value goes in as a bound parameter; nothing is formatted into SQL text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy import Engine, and_, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mnist_serving.store.schema import predictions

TOP_GUESSES = 3


def to_row(record: dict[str, Any]) -> dict[str, Any]:
    """A record as the table stores it: JSON probabilities, the input as 784 bytes."""
    image = record["input"]
    if image is not None:
        image = np.clip(np.rint(np.asarray(image) * 255), 0, 255).astype(np.uint8)
        image = image.reshape(-1).tobytes()
    return {
        **record,
        "probabilities": json.dumps(record["probabilities"]),
        "input": image,
    }


def insert_records(engine: Engine, records: list[dict[str, Any]]) -> None:
    """Insert the records in one transaction (one executemany).

    A request id already stored (a caller may reuse its X-Request-ID) keeps its
    first record; the insert does not fail the whole batch for it.
    """
    dialect = engine.dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(predictions).on_conflict_do_nothing(
        index_elements=["request_id"]
    )
    with engine.begin() as connection:
        connection.execute(statement, [to_row(record) for record in records])


@dataclass(frozen=True)
class LabelOutcome:
    """What a feedback label did to its prediction record."""

    status: Literal["recorded", "unchanged", "conflict", "unknown"]
    model_version: str | None = None
    digit: int | None = None
    label: int | None = None  # the stored label


def record_label(  # noqa: PLR0913 - one keyword per column written
    engine: Engine,
    request_id: str,
    label: int,
    *,
    labelled_by: str | None,
    now: datetime,
    oldest: datetime,
) -> LabelOutcome:
    """Set the label of a record within retention that has none yet.

    A record that already has a label keeps it: the same label again is
    `unchanged`, a different one a `conflict`. The update only writes where
    `label IS NULL`, so two concurrent labels cannot both win.
    """
    table = predictions
    live = and_(table.c.request_id == request_id, table.c.created_at >= oldest)
    with engine.begin() as connection:
        updated = connection.execute(
            update(table)
            .where(live, table.c.label.is_(None))
            .values(label=label, labelled_at=now, labelled_by=labelled_by)
        ).rowcount
        row = connection.execute(
            select(table.c.model_version, table.c.digit, table.c.label).where(live)
        ).one_or_none()
    if row is None:
        return LabelOutcome("unknown")
    if updated:
        status = "recorded"
    else:
        status = "unchanged" if row.label == label else "conflict"
    return LabelOutcome(status, row.model_version, row.digit, row.label)


def pending_review(engine: Engine, oldest: datetime, limit: int) -> dict[str, Any]:
    """The oldest review-routed records with a stored input and no label yet."""
    table = predictions
    waiting = and_(
        table.c.review != "auto_approved",
        table.c.input.is_not(None),
        table.c.label.is_(None),
        table.c.created_at >= oldest,
    )
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).where(waiting)).scalar_one()
        rows = connection.execute(
            select(table)
            .where(waiting)
            .order_by(table.c.created_at, table.c.request_id)
            .limit(limit)
        ).all()
    return {"pending": total, "items": [_review_item(row) for row in rows]}


def _review_item(row: Any) -> dict[str, Any]:
    """One record as the review page shows it: the input and three best guesses."""
    probabilities = json.loads(row.probabilities)
    best = sorted(range(10), key=lambda digit: -probabilities[digit])[:TOP_GUESSES]
    return {
        "request_id": row.request_id,
        "created_at": row.created_at,
        "model_version": row.model_version,
        "review": row.review,
        "digit": row.digit,
        "confidence": row.confidence,
        "guesses": [{"digit": d, "probability": probabilities[d]} for d in best],
        "input": bytes(row.input),
    }


def purge(engine: Engine, oldest: datetime) -> int:
    """Delete the records created before `oldest`; how many went."""
    with engine.begin() as connection:
        result = connection.execute(
            delete(predictions).where(predictions.c.created_at < oldest)
        )
    return int(result.rowcount)
