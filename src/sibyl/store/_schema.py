"""Table definitions (SQLAlchemy Core). Alembic migrations under ``migrations/`` create them;
``tests/contract/test_store_backends.py`` checks that both agree (empty autogenerate diff)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)

# BIGINT ids on PostgreSQL; SQLite only auto-increments an ``INTEGER PRIMARY KEY``
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: sibyl stores aware UTC datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _experiment_fk(nullable: bool) -> sa.Column[int]:
    return sa.Column(
        "experiment_id",
        BigId,
        sa.ForeignKey("experiments.id", ondelete="SET NULL" if nullable else "CASCADE"),
        nullable=nullable,
    )


experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("model", sa.String(200), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("salt", sa.String(64), nullable=False),
    sa.Column("routing", sa.JSON(), nullable=False),
    sa.Column("success_metrics", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("stopped_at", UTCDateTime(), nullable=True),
    sa.CheckConstraint("kind IN ('ab', 'canary', 'shadow', 'bandit', 'ensemble')", name="kind"),
    sa.CheckConstraint("status IN ('draft', 'running', 'paused', 'stopped')", name="status"),
)

variants = sa.Table(
    "variants",
    metadata,
    _experiment_fk(nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("version", sa.String(64), nullable=True),
    sa.Column("alias", sa.String(64), nullable=True),
    sa.Column("weight", sa.Float(), nullable=False),
    sa.Column("is_control", sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint("experiment_id", "name"),
    sa.CheckConstraint("(version IS NULL) <> (alias IS NULL)", name="version_or_alias"),
    sa.CheckConstraint("weight >= 0", name="weight"),
)

assignments = sa.Table(
    "assignments",
    metadata,
    sa.Column("experiment_id", BigId, nullable=False),
    sa.Column("routing_key", sa.String(256), nullable=False),
    sa.Column("variant", sa.String(100), nullable=False),
    sa.Column("first_seen", UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("experiment_id", "routing_key"),
    # the variant must exist in that experiment (which implies the experiment exists)
    sa.ForeignKeyConstraint(
        ["experiment_id", "variant"],
        ["variants.experiment_id", "variants.name"],
        ondelete="CASCADE",
    ),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(128), nullable=True, index=True),
    sa.Column("routing_key", sa.String(256), nullable=True),
    _experiment_fk(nullable=True),
    sa.Column("variant", sa.String(100), nullable=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("version", sa.String(64), nullable=True),
    sa.Column("outcome", sa.JSON(), nullable=True),
    sa.Column("value", sa.Float(), nullable=True),
    sa.Column("label", sa.String(200), nullable=True),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    # ground truth (monitoring): which row of the request it is for (NULL: every row / the whole
    # request), when the outcome happened (routing key + time attribution), and the prediction
    # log row it was joined to
    sa.Column("row", sa.Integer(), nullable=True),
    sa.Column("event_at", UTCDateTime(), nullable=True),
    sa.Column("prediction_id", sa.String(32), nullable=True, index=True),
    sa.Index(None, "experiment_id", "variant"),
    sa.Index(None, "model", "routing_key"),
)

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(128), nullable=False, index=True),
    _experiment_fk(nullable=True),
    sa.Column("variant", sa.String(100), nullable=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("latency_ms", sa.Float(), nullable=False),
    sa.Column("error", sa.Boolean(), nullable=False),
    sa.Column("ts", UTCDateTime(), nullable=False),
    sa.Index(None, "experiment_id", "variant", "ts"),
)

shadow_results = sa.Table(
    "shadow_results",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("experiment_id", BigId, nullable=False),
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
    sa.Column("ts", UTCDateTime(), nullable=False),
    # the candidate variant must exist in that experiment (which implies the experiment exists)
    sa.ForeignKeyConstraint(
        ["experiment_id", "variant"],
        ["variants.experiment_id", "variants.name"],
        ondelete="CASCADE",
    ),
    sa.CheckConstraint("status IN ('compared', 'error', 'dropped')", name="status"),
    sa.CheckConstraint("agreeing_rows >= 0 AND agreeing_rows <= n_rows", name="agreeing_rows"),
    sa.Index(None, "experiment_id", "candidate_version", "ts"),
)

# ---- alerts (sibyl.monitoring.alerts: rules, and alert states that survive restarts) ---------

alert_rules = sa.Table(
    "alert_rules",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
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
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint("condition IN ('>', '>=', '<', '<=', '==', '!=')", name="condition"),
    sa.CheckConstraint("severity IN ('info', 'warning', 'critical')", name="severity"),
)

# no foreign key to alert_rules: a deleted rule's firing alerts must still be resolved (and
# announced) by the engine, which then deletes their rows
alert_states = sa.Table(
    "alert_states",
    metadata,
    sa.Column("rule", sa.String(200), nullable=False),
    sa.Column("fingerprint", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("labels", sa.JSON(), nullable=False),
    sa.Column("annotations", sa.JSON(), nullable=False),
    sa.Column("value", sa.Float(), nullable=True),
    sa.Column("active_at", UTCDateTime(), nullable=True),
    sa.Column("fired_at", UTCDateTime(), nullable=True),
    sa.Column("keep_firing_since", UTCDateTime(), nullable=True),
    sa.Column("resolved_at", UTCDateTime(), nullable=True),
    sa.Column("last_evaluated_at", UTCDateTime(), nullable=True),
    sa.Column("no_data", sa.Boolean(), nullable=False),
    sa.Column("notified_at", UTCDateTime(), nullable=True),
    sa.Column("notified_state", sa.String(16), nullable=True),
    sa.PrimaryKeyConstraint("rule", "fingerprint"),
    sa.CheckConstraint("state IN ('inactive', 'pending', 'firing', 'resolved')", name="state"),
)

# ---- the prediction log (sibyl.monitoring: every prediction request, written through a buffered
# writer that spools to a local file while the store is down) ---------------------------------

prediction_log = sa.Table(
    "prediction_log",
    metadata,
    # server-made (uuid4 hex): replaying a spooled batch twice never duplicates a row
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("request_id", sa.String(128), nullable=False, index=True),
    sa.Column("ts", UTCDateTime(), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("experiment_id", BigId, nullable=True),  # no FK: the log outlives experiments
    sa.Column("variant", sa.String(100), nullable=True),
    sa.Column("routing_key", sa.String(256), nullable=True),
    sa.Column("n_rows", sa.Integer(), nullable=False),
    sa.Column("inputs", sa.JSON(), nullable=True),  # NULL: not logged (policy none / sampled out)
    sa.Column("outputs", sa.JSON(), nullable=True),
    sa.Column("latency_ms", sa.Float(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # ok | invalid | error | timeout | …
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("cached_rows", sa.Integer(), nullable=False),
    sa.Column("fallback", sa.String(200), nullable=True),  # who answered instead, if anyone
    sa.CheckConstraint("n_rows >= 0 AND cached_rows >= 0", name="rows"),
    sa.Index(None, "model", "ts"),
    sa.Index(None, "model", "version", "ts"),
    sa.Index(None, "model", "routing_key", "ts"),
)

# ---- jobs (sibyl.jobs: durable job records; the queue only carries ids) -----------------------

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # uuid4 hex
    sa.Column("kind", sa.String(100), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("priority", sa.String(8), nullable=False),
    sa.Column("params", sa.JSON(), nullable=False),
    sa.Column("progress", sa.Float(), nullable=False),
    sa.Column("message", sa.Text(), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("max_attempts", sa.Integer(), nullable=False),
    sa.Column("retry_delay_s", sa.Float(), nullable=False),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("result", sa.JSON(), nullable=True),
    sa.Column("plan", sa.JSON(), nullable=True),  # what a fanned-out job's chunks share
    sa.Column("chunks_total", sa.Integer(), nullable=True),  # NULL: not fanned out
    sa.Column("chunks_done", sa.Integer(), nullable=False),
    sa.Column("cancel_requested", sa.Boolean(), nullable=False),
    sa.Column("worker", sa.String(200), nullable=True),  # the claim running it
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    sa.Column("enqueued_at", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.CheckConstraint(
        "state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="state"
    ),
    sa.CheckConstraint("priority IN ('high', 'normal', 'low')", name="priority"),
    sa.CheckConstraint("attempts >= 0 AND max_attempts >= 1", name="attempts"),
    sa.Index(None, "state", "lease_until"),
    sa.Index(None, "created_at"),
)

job_chunks = sa.Table(
    "job_chunks",
    metadata,
    sa.Column(
        "job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("idx", sa.Integer(), nullable=False),
    sa.Column("spec", sa.JSON(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("worker", sa.String(200), nullable=True),
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    sa.Column("enqueued_at", UTCDateTime(), nullable=False),
    sa.Column("result", sa.JSON(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("job_id", "idx"),
    sa.CheckConstraint("state IN ('pending', 'running', 'done', 'failed')", name="state"),
    sa.Index(None, "state", "lease_until"),
)
