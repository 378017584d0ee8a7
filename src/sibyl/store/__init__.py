"""sibyl's own records — experiments, variants, sticky assignments, feedback and prediction
outcomes — in SQLite by default or PostgreSQL, through one repository contract (:class:`Store`)::

    store = get_store(None, data_dir=settings.data_dir)   # or "postgresql://user@host/db"
    store.migrate()                                       # Alembic, to head, under a lock
    exp = store.create_experiment("churn-ab", "churn", ExperimentKind.AB, [
        Variant("control", "churn", alias="production", weight=0.5, is_control=True),
        Variant("candidate", "churn", version="7", weight=0.5),
    ])

Tables: ``experiments``, ``variants``, ``assignments``, ``feedback``, ``predictions``,
``shadow_results``, ``jobs``, ``job_chunks`` (see ``_schema.py``); migrations ship in
``sibyl/store/migrations`` and run programmatically.
"""

from sibyl.store._contract import ExperimentRef, Store
from sibyl.store._factory import default_url, get_store
from sibyl.store._jobs import (
    ChunkRecord,
    ChunkState,
    JobPriority,
    JobRecord,
    JobState,
    LeaseClaim,
    NewJob,
    Reaped,
)
from sibyl.store._jobstore import JobStore
from sibyl.store._logstats import HourStats, RequestStats
from sibyl.store._migrate import head_revision
from sibyl.store._predlog import PredictionLogRecord
from sibyl.store._quality import GroundTruth, LabelledPredictions
from sibyl.store._shadow import LatencyPair, ShadowAggregate, ShadowRecord, ShadowStatus
from sibyl.store._sql import SQLStore
from sibyl.store._types import (
    ROUTED_KINDS,
    Assignment,
    Experiment,
    ExperimentKind,
    ExperimentStatus,
    Feedback,
    NewFeedback,
    PredictionOutcome,
    Variant,
    VariantAggregate,
    allowed_from,
)

__all__ = [
    "ROUTED_KINDS",
    "Assignment",
    "ChunkRecord",
    "ChunkState",
    "Experiment",
    "ExperimentKind",
    "ExperimentRef",
    "ExperimentStatus",
    "Feedback",
    "GroundTruth",
    "HourStats",
    "JobPriority",
    "JobRecord",
    "JobState",
    "JobStore",
    "LabelledPredictions",
    "LatencyPair",
    "LeaseClaim",
    "NewFeedback",
    "NewJob",
    "PredictionLogRecord",
    "PredictionOutcome",
    "Reaped",
    "RequestStats",
    "SQLStore",
    "ShadowAggregate",
    "ShadowRecord",
    "ShadowStatus",
    "Store",
    "Variant",
    "VariantAggregate",
    "allowed_from",
    "default_url",
    "get_store",
    "head_revision",
]
