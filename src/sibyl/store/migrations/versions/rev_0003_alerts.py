"""Alert rules and alert states.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10

Written out in full (no imports from sibyl) so it stays valid whatever the models become.
``alert_states`` has no foreign key to ``alert_rules`` on purpose: a deleted rule's firing
alerts are resolved and announced by the alert engine, which then deletes their rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("condition", sa.String(2), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("window_s", sa.Float(), nullable=False),
        sa.Column("for_s", sa.Float(), nullable=False),
        sa.Column("keep_firing_for_s", sa.Float(), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_alert_rules")),
        sa.CheckConstraint(
            "condition IN ('>', '>=', '<', '<=', '==', '!=')",
            name=op.f("ck_alert_rules_condition"),
        ),
        sa.CheckConstraint(
            "severity IN ('info', 'warning', 'critical')", name=op.f("ck_alert_rules_severity")
        ),
    )
    op.create_table(
        "alert_states",
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        _ts("active_at"),
        _ts("fired_at"),
        _ts("keep_firing_since"),
        _ts("resolved_at"),
        _ts("last_evaluated_at"),
        sa.Column("no_data", sa.Boolean(), nullable=False),
        _ts("notified_at"),
        sa.Column("notified_state", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("rule", "fingerprint", name=op.f("pk_alert_states")),
        sa.CheckConstraint(
            "state IN ('inactive', 'pending', 'firing', 'resolved')",
            name=op.f("ck_alert_states_state"),
        ),
    )


def downgrade() -> None:
    op.drop_table("alert_states")
    op.drop_table("alert_rules")
