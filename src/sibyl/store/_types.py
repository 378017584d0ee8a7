"""Records the store takes and returns: frozen dataclasses and ``StrEnum`` states."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sibyl.errors import ConflictError, InvalidInputError

JSONDict = dict[str, Any]


class ExperimentKind(StrEnum):
    """How an experiment moves traffic."""

    AB = "ab"
    CANARY = "canary"
    SHADOW = "shadow"
    BANDIT = "bandit"
    ENSEMBLE = "ensemble"


ROUTED_KINDS: frozenset[ExperimentKind] = frozenset(
    {ExperimentKind.AB, ExperimentKind.CANARY, ExperimentKind.BANDIT}
)
"""Kinds that split a model's unpinned traffic between variants (one running per model)."""


class ExperimentStatus(StrEnum):
    """Life cycle: ``draft → running ⇄ paused → stopped`` (``draft → stopped`` too)."""

    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


# target status → the statuses it may be reached from (setting the current status is a no-op)
_ALLOWED_FROM: Mapping[ExperimentStatus, frozenset[ExperimentStatus]] = {
    ExperimentStatus.DRAFT: frozenset(),
    ExperimentStatus.RUNNING: frozenset({ExperimentStatus.DRAFT, ExperimentStatus.PAUSED}),
    ExperimentStatus.PAUSED: frozenset({ExperimentStatus.RUNNING}),
    ExperimentStatus.STOPPED: frozenset(
        {ExperimentStatus.DRAFT, ExperimentStatus.RUNNING, ExperimentStatus.PAUSED}
    ),
}


def allowed_from(target: ExperimentStatus) -> frozenset[ExperimentStatus]:
    """The statuses from which an experiment may move to ``target``."""
    return _ALLOWED_FROM[target]


def check_transition(name: str, current: ExperimentStatus, target: ExperimentStatus) -> None:
    """Raise :class:`ConflictError` unless ``current → target`` is allowed (or a no-op)."""
    if current == target or current in allowed_from(target):
        return
    raise ConflictError(
        f"Experiment '{name}' is {current}; it cannot become {target}. "
        "Allowed: draft → running ⇄ paused → stopped; create a new experiment to start over"
    )


@dataclass(frozen=True, slots=True)
class Variant:
    """One arm of an experiment: a model version (or alias) and its traffic weight."""

    name: str
    model: str
    version: str | None = None
    alias: str | None = None
    weight: float = 1.0
    is_control: bool = False

    def validate(self) -> None:
        """Raise :class:`InvalidInputError` unless exactly one of version/alias is set and the
        weight is a finite number ≥ 0."""
        if (self.version is None) == (self.alias is None):
            raise InvalidInputError(
                f"Variant '{self.name}' must name exactly one of version or alias "
                f"(got version={self.version!r}, alias={self.alias!r})",
                field="variants",
            )
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise InvalidInputError(
                f"Variant '{self.name}' has weight {self.weight}; use a finite number ≥ 0",
                field="variants",
            )


@dataclass(frozen=True, slots=True)
class Experiment:
    """A stored experiment with its variants (control first, then by name)."""

    id: int
    name: str
    model: str
    kind: ExperimentKind
    status: ExperimentStatus
    salt: str
    routing: JSONDict
    success_metrics: list[JSONDict]
    variants: tuple[Variant, ...]
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    stopped_at: datetime | None = None

    def variant(self, name: str) -> Variant | None:
        """The variant called ``name``, or ``None``."""
        return next((v for v in self.variants if v.name == name), None)

    @property
    def control(self) -> Variant | None:
        """The control variant, or ``None`` when none is marked."""
        return next((v for v in self.variants if v.is_control), None)


@dataclass(frozen=True, slots=True)
class Assignment:
    """Which variant a routing key got in an experiment, and when it was first seen."""

    experiment_id: int
    routing_key: str
    variant: str
    first_seen: datetime


@dataclass(frozen=True, slots=True)
class NewFeedback:
    """An outcome reported for a request id and/or a routing key.

    At least one of ``request_id`` / ``routing_key`` and one of ``outcome`` / ``value`` /
    ``label`` is required. ``experiment_id`` + ``variant`` attribute it explicitly; otherwise
    aggregates attribute it through the prediction record of ``request_id``, else through the
    assignment of ``routing_key`` (see :meth:`Store.aggregates`).
    """

    model: str
    version: str | None = None
    request_id: str | None = None
    routing_key: str | None = None
    experiment_id: int | None = None
    variant: str | None = None
    outcome: JSONDict | None = None
    value: float | None = None
    label: str | None = None
    received_at: datetime | None = None
    row: int | None = None
    """Which row of the request it is about (0-based); ``None``: every row."""
    event_at: datetime | None = None
    """When the outcome happened (aware): with ``routing_key`` and no ``request_id`` it is
    attributed to that key's latest logged prediction at or before this time."""

    def validate(self) -> None:
        """Raise :class:`InvalidInputError` when the feedback cannot be attributed or is empty."""
        _check_ground_truth(self.row, self.event_at)
        if self.request_id is None and self.routing_key is None:
            raise InvalidInputError(
                f"Feedback for model '{self.model}' names neither a request_id nor a "
                "routing_key; send the request id of the prediction or the routing key",
                field="request_id",
            )
        if self.outcome is None and self.value is None and self.label is None:
            raise InvalidInputError(
                f"Feedback for model '{self.model}' carries no outcome, value or label",
                field="value",
            )
        if (self.experiment_id is None) != (self.variant is None):
            raise InvalidInputError(
                "Feedback must name both experiment_id and variant, or neither", field="variant"
            )


@dataclass(frozen=True, slots=True)
class Feedback:
    """A stored feedback row (``NewFeedback`` plus its id and reception time)."""

    id: int
    model: str
    version: str | None
    request_id: str | None
    routing_key: str | None
    experiment_id: int | None
    variant: str | None
    outcome: JSONDict | None
    value: float | None
    label: str | None
    received_at: datetime
    row: int | None = None
    event_at: datetime | None = None
    prediction_id: str | None = None
    """The ``prediction_log`` row it was joined to (``None`` until that row is known)."""


def _check_ground_truth(row: int | None, event_at: datetime | None) -> None:
    if row is not None and (isinstance(row, bool) or not isinstance(row, int) or row < 0):
        raise InvalidInputError(
            f"'row' must be a row index of the request (an integer ≥ 0), got {row!r}", field="row"
        )
    if event_at is not None and event_at.tzinfo is None:
        raise InvalidInputError(
            f"'event_at' must carry a UTC offset (e.g. 2025-01-31T09:30:00Z), got {event_at}",
            field="event_at",
        )


@dataclass(frozen=True, slots=True)
class PredictionOutcome:
    """One served prediction, as experiments account for it (``ts`` defaults to now)."""

    request_id: str
    model: str
    version: str
    latency_ms: float
    experiment_id: int | None = None
    variant: str | None = None
    error: bool = False
    ts: datetime | None = None


@dataclass(frozen=True, slots=True)
class VariantAggregate:
    """Everything the statistics need about one variant of one experiment.

    ``n`` counts prediction records, ``errors`` those flagged as errors; latencies (ms) are over
    all ``n`` records (linear interpolation, as ``numpy.percentile``) and ``None`` when ``n`` is 0;
    ``latency_var_ms2`` is their unbiased sample variance (ms², 0 for one record).
    ``assigned`` counts distinct routing keys assigned. Feedback: ``feedback_n`` rows attributed
    to the variant, of which ``value_n`` carry a numeric value with ``value_sum`` and
    ``value_sumsq`` (variance = sumsq/n − mean²); ``labels`` counts feedback labels.
    """

    variant: str
    is_control: bool
    weight: float
    assigned: int = 0
    n: int = 0
    errors: int = 0
    latency_mean_ms: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_var_ms2: float | None = None
    feedback_n: int = 0
    value_n: int = 0
    value_sum: float = 0.0
    value_sumsq: float = 0.0
    labels: dict[str, int] = field(default_factory=dict)

    @property
    def error_rate(self) -> float | None:
        """``errors / n``, or ``None`` without predictions."""
        return self.errors / self.n if self.n else None

    @property
    def value_mean(self) -> float | None:
        """Mean numeric feedback value, or ``None`` without values."""
        return self.value_sum / self.value_n if self.value_n else None
