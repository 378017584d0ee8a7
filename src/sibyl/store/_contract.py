"""The :class:`Store` contract: sibyl's own records (experiments, assignments, feedback,
prediction outcomes) behind one small repository interface."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from sibyl.store._jobstore import JobStore
from sibyl.store._logstats import HourStats, RequestStats
from sibyl.store._predlog import PredictionLogRecord
from sibyl.store._quality import LabelledPredictions
from sibyl.store._shadow import ShadowAggregate, ShadowRecord
from sibyl.store._types import (
    Assignment,
    Experiment,
    ExperimentKind,
    ExperimentStatus,
    Feedback,
    NewFeedback,
    PredictionOutcome,
    Variant,
    VariantAggregate,
)

ExperimentRef = int | str
"""An experiment by id (``int``) or by name (``str``)."""


class Store(JobStore, Protocol):
    """sibyl's records on one database.

    **Thread safety**: one Store per process, shared by every thread and task; each call takes
    its own connection from the pool and runs in its own transaction, so calls are atomic and
    independent. Calls block (run them in a worker thread from async code).

    **Misses**: ``get_*`` of an experiment raises :class:`~sibyl.errors.NotFoundError`;
    :meth:`get_assignment` returns ``None``; listings return empty lists.

    **Failures**: :class:`~sibyl.errors.BackendUnavailableError` when the database cannot be
    reached or has no schema yet (the message says what to check), ``ConflictError`` for a
    duplicate experiment name or a forbidden status change, ``InvalidInputError`` for malformed
    records, ``NotFoundError`` for an unknown experiment or variant. Datetimes are aware UTC.
    """

    @property
    def url(self) -> str:
        """The database URL, without password."""
        ...

    def migrate(self) -> None:
        """Bring the schema to the newest revision. Idempotent and safe when several processes
        call it at once (they serialise on a database lock)."""
        ...

    def schema_revision(self) -> str | None:
        """The schema revision the database is at (``None``: never migrated)."""
        ...

    def close(self) -> None:
        """Release every pooled connection; the store must not be used afterwards."""
        ...

    def create_experiment(
        self,
        name: str,
        model: str,
        kind: ExperimentKind,
        variants: Sequence[Variant],
        *,
        salt: str | None = None,
        routing: Mapping[str, Any] | None = None,
        success_metrics: Sequence[Mapping[str, Any]] | None = None,
    ) -> Experiment:
        """Store a new ``draft`` experiment with its variants (a random salt when none is
        given). Raises ``ConflictError`` when ``name`` is taken, ``InvalidInputError`` when
        there is no variant, names repeat, more than one is control, or a variant is invalid
        (:meth:`Variant.validate`)."""
        ...

    def get_experiment(self, ref: ExperimentRef) -> Experiment:
        """The experiment with that id or name; ``NotFoundError`` when there is none."""
        ...

    def list_experiments(
        self, *, model: str | None = None, status: ExperimentStatus | None = None
    ) -> list[Experiment]:
        """Experiments (optionally of one model / in one status), oldest first."""
        ...

    def set_status(self, ref: ExperimentRef, status: ExperimentStatus) -> Experiment:
        """Move the experiment to ``status`` (sets ``started_at`` on the first start and
        ``stopped_at`` on stop); setting the current status is a no-op. ``ConflictError`` for a
        forbidden transition (see :class:`ExperimentStatus`), atomic under concurrent callers."""
        ...

    def set_weights(self, ref: ExperimentRef, weights: Mapping[str, float]) -> Experiment:
        """Change the traffic weights of the named variants (others keep theirs).
        ``NotFoundError`` for an unknown variant, ``InvalidInputError`` for a bad weight."""
        ...

    def update_routing(
        self,
        ref: ExperimentRef,
        routing: Mapping[str, Any],
        *,
        expected: Mapping[str, Any] | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> Experiment:
        """Replace the experiment's ``routing`` JSON and, in the same transaction, the
        ``weights`` of the named variants (others keep theirs).

        Compare-and-set: with ``expected``, the write happens only if the stored routing equals
        ``expected`` (as JSON) at that moment, else ``ConflictError`` and nothing changes — so
        replicas sharing one database cannot both apply a change computed from the same state.
        Atomic under concurrent callers. ``NotFoundError`` for an unknown experiment or variant,
        ``InvalidInputError`` for a bad weight or a routing that is not JSON."""
        ...

    def record_assignment(self, experiment_id: int, routing_key: str, variant: str) -> Assignment:
        """Remember that ``routing_key`` got ``variant``, once: the first writer wins and every
        caller (including concurrent ones) gets the stored assignment back, which may name
        another variant than the one passed. ``NotFoundError`` when the experiment has no such
        variant."""
        ...

    def record_assignments(self, items: Iterable[tuple[int, str, str]]) -> int:
        """Many ``(experiment_id, routing_key, variant)`` at once, in one transaction, with
        :meth:`record_assignment`'s first-writer-wins rule (keys already assigned keep their
        variant); returns how many items were passed. ``NotFoundError`` (and nothing written)
        when one names an unknown experiment or variant."""
        ...

    def get_assignment(self, experiment_id: int, routing_key: str) -> Assignment | None:
        """The stored assignment of ``routing_key``, or ``None``."""
        ...

    def add_feedback(self, item: NewFeedback) -> Feedback:
        """Store one feedback row (``InvalidInputError`` when :meth:`NewFeedback.validate`
        fails, ``NotFoundError`` when ``experiment_id`` does not exist). In the same
        transaction it is attributed to its logged prediction when that is in
        ``prediction_log`` already (``Feedback.prediction_id``; rules in
        :mod:`sibyl.store._quality`), and refused (``InvalidInputError`` on ``row``) when its
        ``row`` is past that prediction's rows."""
        ...

    def add_feedback_many(self, items: Iterable[NewFeedback]) -> int:
        """Store many feedback rows in one transaction (all or none), attributed as by
        :meth:`add_feedback`; returns how many. A bad ``row`` names ``items[i].row``."""
        ...

    def attribute_feedback(self, *, since: datetime | None = None) -> int:
        """Attribute feedback received at or after ``since`` (all when ``None``) whose
        prediction was logged after the feedback arrived; returns how many rows were
        attributed (idempotent)."""
        ...

    def labelled_predictions(
        self,
        model: str,
        *,
        since: datetime,
        until: datetime,
        version: str | None = None,
        limit: int = 200_000,
    ) -> LabelledPredictions:
        """Ground truth (feedback with a ``label`` or a non-``success`` ``value``) of
        ``model``'s successful predictions made with ``since <= ts < until`` — by *prediction*
        time — of one ``version`` when given; feedback not attributed yet is joined by the same
        rules at query time. Also the rows each version answered in that range (for label
        coverage). At most ``limit`` feedback rows, the newest (``truncated`` says so)."""
        ...

    def request_stats(
        self,
        model: str,
        *,
        since: datetime,
        until: datetime,
        version: str | None = None,
        sample: int = 10_000,
    ) -> RequestStats:
        """Logged requests of ``model`` with ``since <= ts < until``: counts by status, rows,
        mean and 95th-percentile latency (exact in PostgreSQL, in Python over at most
        ``sample`` rows elsewhere; see :mod:`sibyl.store._logstats`)."""
        ...

    def hourly_stats(
        self, model: str, *, since: datetime, until: datetime, sample: int = 2_000
    ) -> list[HourStats]:
        """One :class:`HourStats` per UTC clock hour overlapping ``[since, until)`` (empty
        hours included, oldest first): requests, server-side errors, p95 latency."""
        ...

    def list_feedback(
        self,
        *,
        request_id: str | None = None,
        experiment_id: int | None = None,
        limit: int = 1000,
    ) -> list[Feedback]:
        """Feedback rows matching every given filter, oldest first, at most ``limit``."""
        ...

    def record_predictions(self, rows: Iterable[PredictionOutcome]) -> int:
        """Store prediction outcomes in one transaction; returns how many. Rows naming an
        experiment that does not exist raise ``NotFoundError`` (none is stored)."""
        ...

    def aggregates(
        self, ref: ExperimentRef, *, since: datetime | None = None, percentiles: bool = True
    ) -> list[VariantAggregate]:
        """One :class:`VariantAggregate` per variant (control first), over the records at or
        after ``since`` (prediction ``ts``, assignment ``first_seen``, feedback
        ``received_at``). Feedback counts for a variant when it names the experiment and
        variant; else when its request id has a prediction record in the experiment (that
        record's variant); else, when its request id has no prediction record at all and it is
        feedback on the experiment's model, through the assignment of its routing key.
        ``percentiles=False`` leaves the latency percentiles ``None`` and computes everything else
        in the database (no per-record read: what a periodic controller wants)."""
        ...

    def record_shadow_results(self, rows: Iterable[ShadowRecord]) -> int:
        """Store shadow records (one per mirrored request and candidate) in one transaction;
        returns how many. ``InvalidInputError`` when :meth:`ShadowRecord.validate` fails,
        ``NotFoundError`` (none is stored) when a row names an experiment or variant that does
        not exist."""
        ...

    def shadow_aggregates(
        self, ref: ExperimentRef, *, since: datetime | None = None
    ) -> list[ShadowAggregate]:
        """One :class:`ShadowAggregate` per (candidate variant, candidate model, candidate
        version) of the experiment over the records at or after ``since``, sorted by variant
        then version; ``[]`` without records. ``NotFoundError`` for an unknown experiment."""
        ...

    def write_prediction_log(self, rows: Iterable[PredictionLogRecord]) -> int:
        """Store prediction log records in one transaction, skipping ids already stored (a
        batch written twice stores each row once); returns how many records were passed.
        ``InvalidInputError`` (nothing stored) when :meth:`PredictionLogRecord.validate` fails or
        a string is longer than its column; ``BackendUnavailableError`` when the database is
        down (the writer then spools the batch)."""
        ...

    def query_prediction_log(
        self,
        model: str,
        *,
        version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        status: str | None = None,
        has_inputs: bool | None = None,
        request_id: str | None = None,
        limit: int = 100,
        with_inputs: bool = False,
    ) -> list[PredictionLogRecord]:
        """``model``'s logged requests matching every given filter (``since <= ts < until``;
        ``has_inputs``: only rows whose inputs were / were not logged), newest first, at most
        ``limit`` (≤ 100,000, else ``InvalidInputError``). ``inputs`` is read only with
        ``with_inputs`` (else ``None``: it is the bulk of a row). ``[]`` when none match."""
        ...

    def count_prediction_log(
        self,
        model: str,
        *,
        version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        status: str | None = None,
        has_inputs: bool | None = None,
    ) -> int:
        """How many rows :meth:`query_prediction_log` would match without a limit."""
        ...

    def delete_prediction_log(
        self,
        *,
        older_than: datetime | None = None,
        keep_rows: int | None = None,
        model: str | None = None,
    ) -> int:
        """Retention: delete rows with ``ts < older_than`` and, per model, every row but the
        ``keep_rows`` newest (by ``ts``); only ``model``'s rows when given. One transaction;
        returns how many rows were deleted."""
        ...
