"""The `predictions` table, the contract with the training project's feedback pipeline.

One row per prediction (a batch's items are `<request_id>:<index>`). `input` is
the model's own 28x28 uint8 input, row-major, 784 bytes, kept for predictions
routed to review (or all of them with FEEDBACK_STORE_INPUTS=all). `label` is
the true digit once someone gave feedback. Migrations under `migrations/`
create it; this module is what the service's queries use.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)

INPUT_BYTES = 28 * 28
metadata = MetaData()

predictions = Table(
    "predictions",
    metadata,
    Column("request_id", Text, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("model_version", Text, nullable=False),
    Column("client_id", Text, nullable=True),
    Column("digit", Integer, nullable=False),
    Column("confidence", Float, nullable=False),
    Column("probabilities", Text, nullable=False),
    Column("review", Text, nullable=False),
    Column("input", LargeBinary, nullable=True),
    Column("label", Integer, nullable=True),
    Column("labelled_at", DateTime(timezone=True), nullable=True),
    Column("labelled_by", Text, nullable=True),
    CheckConstraint("label BETWEEN 0 AND 9", name="ck_predictions_label"),
    Index("ix_predictions_created_at", "created_at"),
    Index("ix_predictions_label", "label"),
)
