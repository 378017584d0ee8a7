"""Shadow results; experiments may be of kind 'ensemble'.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-09

Written out in full (no imports from sibyl) so it stays valid whatever the models become.
The kind check of ``experiments`` is replaced (SQLite: the table is rebuilt by batch mode).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_KINDS_BEFORE = "kind IN ('ab', 'canary', 'shadow', 'bandit')"
_KINDS_AFTER = "kind IN ('ab', 'canary', 'shadow', 'bandit', 'ensemble')"


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    _set_kinds(_KINDS_AFTER)
    op.create_table(
        "shadow_results",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("experiment_id", _id(), nullable=False),
        sa.Column("variant", sa.String(100), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("primary_version", sa.String(64), nullable=False),
        sa.Column("candidate_model", sa.String(200), nullable=False),
        sa.Column("candidate_version", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("agreeing_rows", sa.Integer(), nullable=False),
        sa.Column("primary_latency_ms", sa.Float(), nullable=False),
        sa.Column("shadow_latency_ms", sa.Float(), nullable=True),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_shadow_results"),
        sa.ForeignKeyConstraint(
            ["experiment_id", "variant"],
            ["variants.experiment_id", "variants.name"],
            name="fk_shadow_results_experiment_id_variants",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "status IN ('compared', 'error', 'dropped')", name=op.f("ck_shadow_results_status")
        ),
        sa.CheckConstraint(
            "agreeing_rows >= 0 AND agreeing_rows <= n_rows",
            name=op.f("ck_shadow_results_agreeing_rows"),
        ),
    )
    op.create_index(
        "ix_shadow_results_experiment_id_candidate_version_ts",
        "shadow_results",
        ["experiment_id", "candidate_version", "ts"],
    )


def downgrade() -> None:
    op.drop_index("ix_shadow_results_experiment_id_candidate_version_ts", "shadow_results")
    op.drop_table("shadow_results")
    op.execute("DELETE FROM experiments WHERE kind = 'ensemble'")
    _set_kinds(_KINDS_BEFORE)


def _set_kinds(check: str) -> None:
    # 0001 let the naming convention rewrite its check names ("ck_experiments_kind" became
    # "ck_experiments_ck_experiments_kind"); whichever is there goes, and op.f keeps the new
    # name as written. SQLite: batch mode rebuilds the table (the other checks are reflected).
    old = _existing_kind_check()
    with op.batch_alter_table("experiments") as batch:
        batch.drop_constraint(op.f(old), type_="check")
        batch.create_check_constraint(op.f("ck_experiments_kind"), check)


def _existing_kind_check() -> str:
    checks = sa.inspect(op.get_bind()).get_check_constraints("experiments")
    names = [c["name"] for c in checks if c["name"] and "kind" in c["name"]]
    return names[0] if names else "ck_experiments_ck_experiments_kind"
