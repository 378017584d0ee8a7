"""Initial schema: experiments, variants, assignments, feedback, predictions.

Revision ID: 0001
Revises:
Create Date: 2026-12-02

Written out in full (no imports from sibyl) so it stays valid whatever the models become.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _experiment_fk(table: str, nullable: bool) -> sa.Column[object]:
    return sa.Column(
        "experiment_id",
        _id(),
        sa.ForeignKey(
            "experiments.id",
            name=f"fk_{table}_experiment_id_experiments",
            ondelete="SET NULL" if nullable else "CASCADE",
        ),
        nullable=nullable,
    )


def upgrade() -> None:
    _experiments()
    _variants()
    _assignments()
    _feedback()
    _predictions()


def _experiments() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("routing", sa.JSON(), nullable=False),
        sa.Column("success_metrics", sa.JSON(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("started_at", nullable=True),
        _ts("stopped_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_experiments"),
        sa.UniqueConstraint("name", name="uq_experiments_name"),
        sa.CheckConstraint(
            "kind IN ('ab', 'canary', 'shadow', 'bandit')", name="ck_experiments_kind"
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'running', 'paused', 'stopped')", name="ck_experiments_status"
        ),
    )
    op.create_index("ix_experiments_model", "experiments", ["model"])


def _variants() -> None:
    op.create_table(
        "variants",
        _experiment_fk("variants", nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("alias", sa.String(64), nullable=True),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("is_control", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", "name", name="pk_variants"),
        sa.CheckConstraint(
            "(version IS NULL) <> (alias IS NULL)", name="ck_variants_version_or_alias"
        ),
        sa.CheckConstraint("weight >= 0", name="ck_variants_weight"),
    )


def _assignments() -> None:
    op.create_table(
        "assignments",
        sa.Column("experiment_id", _id(), nullable=False),
        sa.Column("routing_key", sa.String(256), nullable=False),
        sa.Column("variant", sa.String(100), nullable=False),
        _ts("first_seen"),
        sa.PrimaryKeyConstraint("experiment_id", "routing_key", name="pk_assignments"),
        sa.ForeignKeyConstraint(
            ["experiment_id", "variant"],
            ["variants.experiment_id", "variants.name"],
            name="fk_assignments_experiment_id_variants",
            ondelete="CASCADE",
        ),
    )


def _feedback() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("routing_key", sa.String(256), nullable=True),
        _experiment_fk("feedback", nullable=True),
        sa.Column("variant", sa.String(100), nullable=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("outcome", sa.JSON(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("label", sa.String(200), nullable=True),
        _ts("received_at"),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
    )
    op.create_index("ix_feedback_request_id", "feedback", ["request_id"])
    op.create_index("ix_feedback_experiment_id_variant", "feedback", ["experiment_id", "variant"])


def _predictions() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        _experiment_fk("predictions", nullable=True),
        sa.Column("variant", sa.String(100), nullable=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("error", sa.Boolean(), nullable=False),
        _ts("ts"),
        sa.PrimaryKeyConstraint("id", name="pk_predictions"),
    )
    op.create_index("ix_predictions_request_id", "predictions", ["request_id"])
    op.create_index(
        "ix_predictions_experiment_id_variant_ts", "predictions", ["experiment_id", "variant", "ts"]
    )


def downgrade() -> None:
    for table in ("predictions", "feedback", "assignments", "variants", "experiments"):
        op.drop_table(table)
