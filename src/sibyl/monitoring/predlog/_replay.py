"""Replay: re-score logged requests against another version and compare with what was served.

The logged inputs of a model's answered requests (``status = ok`` and inputs kept: see the
``prediction_log.inputs`` policy) are sent again through the normal prediction path pinned to
the target version, at LOW priority, in chunks of at most ``CHUNK_ROWS`` rows that share their
columns (a chunk that fails is retried request by request, so one bad request fails alone).
Replays are not logged themselves and never touch experiments or shadows.

Agreement per row: the same label for classifiers (or any non-numeric output), ``|Δ| ≤
tolerance`` for numbers; ``mean_abs_prob_diff`` averages ``|p_target − p_logged|`` over the
rows and classes of classifiers whose classes match. Inputs logged with redacted fields hold
``null`` there, which the target usually refuses: such requests count as ``failed``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from sibyl.batching import Priority
from sibyl.errors import InvalidInputError, SibylError
from sibyl.store import PredictionLogRecord, Store
from sibyl.store._predlog import JSON_OPTIONS, json_default

if TYPE_CHECKING:
    from sibyl.runtime.types import Prediction
    from sibyl.service import PredictionService

MAX_LIMIT = 10_000
CHUNK_ROWS = 64


@dataclass(frozen=True, slots=True)
class ReplaySpec:
    """What to replay: ``model``'s logged requests with ``since <= ts < until`` (of
    ``source_version`` when given), the newest ``limit`` that kept their inputs, against
    ``version``."""

    model: str
    version: str
    since: datetime | None = None
    until: datetime | None = None
    source_version: str | None = None
    limit: int = 1000
    tolerance: float = 1e-6
    max_disagreements: int = 10

    def validate(self) -> None:
        """``InvalidInputError`` naming the bad field."""
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidInputError(
                f"'limit' must be between 1 and {MAX_LIMIT}, got {self.limit}", field="limit"
            )
        if not self.tolerance >= 0:
            raise InvalidInputError(
                f"'tolerance' must be ≥ 0, got {self.tolerance}", field="tolerance"
            )
        if self.since and self.until and self.since >= self.until:
            raise InvalidInputError("'since' must be before 'until'", field="since")


@dataclass(slots=True)
class ReplayReport:
    """How the target version answered the logged requests compared with what was served."""

    model: str
    target_version: str
    source_version: str | None
    requests: int = 0
    """Logged requests re-scored by the target."""
    skipped: int = 0
    """Answered requests in the window that cannot be replayed: inputs or outputs not logged."""
    failed: int = 0
    """Requests the target refused or failed on (or a fallback answered instead)."""
    rows: int = 0
    agreeing_rows: int = 0
    mean_abs_prob_diff: float | None = None
    disagreements: list[dict[str, Any]] = field(default_factory=list)
    """The first ``max_disagreements`` rows that disagree: logged vs replayed answer."""
    errors: list[dict[str, Any]] = field(default_factory=list)
    """The first ``max_disagreements`` failures: which request and why."""

    @property
    def agreement(self) -> float | None:
        """Share of compared rows that agree (``None`` without rows)."""
        return self.agreeing_rows / self.rows if self.rows else None

    def to_json(self) -> dict[str, Any]:
        """The report as the API returns it."""
        return {
            "model": self.model,
            "target_version": self.target_version,
            "source_version": self.source_version,
            "requests": self.requests,
            "skipped": self.skipped,
            "failed": self.failed,
            "rows": self.rows,
            "agreeing_rows": self.agreeing_rows,
            "agreement": self.agreement,
            "mean_abs_prob_diff": self.mean_abs_prob_diff,
            "disagreements": self.disagreements,
            "errors": self.errors,
        }


async def replay(service: PredictionService, store: Store, spec: ReplaySpec) -> ReplayReport:
    """Re-score and compare (see the module docstring). ``NotFoundError`` when the model or the
    target version does not exist."""
    spec.validate()
    await service.manager.get(spec.model, spec.version)  # 404 before reading anything
    logged = await asyncio.to_thread(
        store.query_prediction_log, spec.model, version=spec.source_version, since=spec.since,
        until=spec.until, status="ok", has_inputs=True, limit=spec.limit, with_inputs=True,
    )  # fmt: skip
    blind = await asyncio.to_thread(
        store.count_prediction_log, spec.model, version=spec.source_version, since=spec.since,
        until=spec.until, status="ok", has_inputs=False,
    )  # fmt: skip
    report = ReplayReport(spec.model, spec.version, spec.source_version, skipped=blind)
    usable = [r for r in logged if r.outputs is not None and r.inputs is not None]
    report.skipped += len(logged) - len(usable)
    probs = _ProbDiff()
    for chunk in _chunks(usable):
        for record, answer in await _score(service, spec, chunk):
            _compare(report, spec, record, answer, probs)
    report.mean_abs_prob_diff = probs.mean()
    return report


def _chunks(records: Sequence[PredictionLogRecord]) -> list[list[PredictionLogRecord]]:
    """Consecutive records with the same columns, at most ``CHUNK_ROWS`` rows a chunk."""
    out: list[list[PredictionLogRecord]] = []
    rows = 0
    for record in records:
        n = len(_inputs(record)[1])
        if out and rows + n <= CHUNK_ROWS and _inputs(out[-1][0])[0] == _inputs(record)[0]:
            out[-1].append(record)
            rows += n
        else:
            out.append([record])
            rows = n
    return out


def _inputs(record: PredictionLogRecord) -> tuple[list[str], list[list[Any]]]:
    assert record.inputs is not None
    return list(record.inputs.get("columns") or []), list(record.inputs.get("rows") or [])


Answer = Any  # a Prediction, or the SibylError the target raised


async def _score(
    service: PredictionService, spec: ReplaySpec, chunk: list[PredictionLogRecord]
) -> list[tuple[PredictionLogRecord, Answer]]:
    """Each record with the target's answer for its rows (or the error)."""
    columns = _inputs(chunk[0])[0]
    rows = [row for record in chunk for row in _inputs(record)[1]]
    try:
        pred = await _predict(service, spec, columns, rows, chunk[0].id)
    except SibylError as exc:
        if len(chunk) == 1:
            return [(chunk[0], exc)]
        return [pair for record in chunk for pair in await _score(service, spec, [record])]
    out = []
    start = 0
    for record in chunk:
        n = len(_inputs(record)[1])
        out.append((record, pred.slice(start, start + n)))
        start += n
    return out


async def _predict(
    service: PredictionService, spec: ReplaySpec, columns: list[str], rows: list[Any], rid: str
) -> Prediction:
    from sibyl.service import Inputs, PredictRequest  # runtime import: service imports predlog

    req = PredictRequest(
        spec.model,
        Inputs("rows", rows, columns, "inputs"),
        ref=spec.version,
        priority=Priority.LOW,
        request_id=f"replay-{rid}",
    )
    result = await service.predict_unlogged(req)
    if result.fallback is not None:
        raise SibylError(
            f"version {spec.version} did not answer ({result.fallback_reason}); its fallback "
            f"{result.fallback} did"
        )
    prediction: Prediction = result.prediction
    return prediction


def _compare(
    report: ReplayReport,
    spec: ReplaySpec,
    record: PredictionLogRecord,
    answer: Answer,
    probs: _ProbDiff,
) -> None:
    if isinstance(answer, SibylError):
        report.failed += 1
        if len(report.errors) < spec.max_disagreements:
            report.errors.append(_ref(record) | {"error": answer.message})
        return
    report.requests += 1
    assert record.outputs is not None
    logged = list(record.outputs.get("predictions") or [])
    replayed = _plain(answer.predictions)
    for row, (old, new) in enumerate(zip(logged, replayed, strict=False)):
        report.rows += 1
        if _agree(old, new, spec.tolerance):
            report.agreeing_rows += 1
        elif len(report.disagreements) < spec.max_disagreements:
            report.disagreements.append(_ref(record) | {"row": row, "logged": old, "replayed": new})
    probs.add(record.outputs, answer)


def _ref(record: PredictionLogRecord) -> dict[str, Any]:
    return {
        "prediction_id": record.id,
        "request_id": record.request_id,
        "logged_version": record.version,
    }


def _plain(value: Any) -> list[Any]:
    """An output array as JSON values (what the log holds)."""
    out: list[Any] = orjson.loads(orjson.dumps(value, default=json_default, option=JSON_OPTIONS))
    return out


def _agree(old: Any, new: Any, tolerance: float) -> bool:
    numbers = (int, float)
    if isinstance(old, numbers) and isinstance(new, numbers) and not isinstance(old, bool):
        return abs(float(old) - float(new)) <= tolerance
    return bool(old == new)


class _ProbDiff:
    """Running mean of ``|Δp|`` over rows × classes, classes aligned by label."""

    def __init__(self) -> None:
        self.total = 0.0
        self.n = 0

    def add(self, outputs: dict[str, Any], answer: Prediction) -> None:
        old, classes = outputs.get("probabilities"), outputs.get("classes")
        if old is None or answer.probabilities is None or not classes or not answer.classes:
            return
        mine = _plain(list(answer.classes))
        if sorted(map(str, mine)) != sorted(map(str, classes)) or len(mine) != len(classes):
            return
        order = [mine.index(c) if c in mine else -1 for c in classes]
        if -1 in order:
            return
        new = np.asarray(answer.probabilities, dtype=float)[:, order]
        try:
            before = np.asarray(old, dtype=float)
        except (TypeError, ValueError):
            return
        if before.shape != new.shape:
            return
        diff = np.abs(new - before)
        self.total += float(np.nansum(diff))
        self.n += int(np.isfinite(diff).sum())

    def mean(self) -> float | None:
        return self.total / self.n if self.n else None
