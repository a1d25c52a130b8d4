"""Create the predictions table with its created_at and label indexes.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """The table of prediction records and their feedback labels."""
    op.create_table(
        "predictions",
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, nullable=True),
        sa.Column("digit", sa.Integer, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("probabilities", sa.Text, nullable=False),
        sa.Column("review", sa.Text, nullable=False),
        sa.Column("input", sa.LargeBinary, nullable=True),
        sa.Column("label", sa.Integer, nullable=True),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("labelled_by", sa.Text, nullable=True),
        sa.CheckConstraint("label BETWEEN 0 AND 9", name="ck_predictions_label"),
    )
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"])
    op.create_index("ix_predictions_label", "predictions", ["label"])


def downgrade() -> None:
    """Drop the table (and its indexes with it)."""
    op.drop_table("predictions")
