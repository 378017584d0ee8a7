"""The prediction log; feedback learns its row, its event time and its prediction.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Written out in full (no imports from sibyl) so it stays valid whatever the models become.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "prediction_log",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("experiment_id", _id(), nullable=True),
        sa.Column("variant", sa.String(100), nullable=True),
        sa.Column("routing_key", sa.String(256), nullable=True),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=True),
        sa.Column("outputs", sa.JSON(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cached_rows", sa.Integer(), nullable=False),
        sa.Column("fallback", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_prediction_log"),
        sa.CheckConstraint("n_rows >= 0 AND cached_rows >= 0", name=op.f("ck_prediction_log_rows")),
    )
    op.create_index("ix_prediction_log_request_id", "prediction_log", ["request_id"])
    op.create_index("ix_prediction_log_model_ts", "prediction_log", ["model", "ts"])
    op.create_index(
        "ix_prediction_log_model_version_ts", "prediction_log", ["model", "version", "ts"]
    )
    op.create_index(
        "ix_prediction_log_model_routing_key_ts", "prediction_log", ["model", "routing_key", "ts"]
    )
    with op.batch_alter_table("feedback") as batch:
        batch.add_column(sa.Column("row", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("event_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("prediction_id", sa.String(32), nullable=True))
        batch.create_index("ix_feedback_prediction_id", ["prediction_id"])
        batch.create_index("ix_feedback_model_routing_key", ["model", "routing_key"])


def downgrade() -> None:
    with op.batch_alter_table("feedback") as batch:
        batch.drop_index("ix_feedback_model_routing_key")
        batch.drop_index("ix_feedback_prediction_id")
        batch.drop_column("prediction_id")
        batch.drop_column("event_at")
        batch.drop_column("row")
    op.drop_index("ix_prediction_log_model_routing_key_ts", "prediction_log")
    op.drop_index("ix_prediction_log_model_version_ts", "prediction_log")
    op.drop_index("ix_prediction_log_model_ts", "prediction_log")
    op.drop_index("ix_prediction_log_request_id", "prediction_log")
    op.drop_table("prediction_log")
