"""Ground truth joined to the prediction log: the SQL behind live quality.

**Attribution.** A feedback row is about one logged prediction (``feedback.prediction_id``):

1. by ``request_id``: the latest ``prediction_log`` row of the same model with that request id;
2. else by ``routing_key`` + ``event_at``: the key's latest successful (``status = 'ok'``)
   prediction of the model at or before ``event_at``.

Feedback is attributed in the transaction that stores it when its log row already exists
(:func:`store_feedback`), later by :func:`attribute_pending` (the quality refresher calls it),
and until then by the same two rules at query time (:func:`labelled_predictions`): a label that
arrives before the buffered log writer flushed counts as soon as the log row lands. A routing
key's attribution is stored only once ``event_at`` is :data:`KEY_SETTLE_S` old: a younger
prediction of the key may still sit in the writer's buffer (or spool), and the latest one must
win. ``row``
names one row of the request (``NULL``: every row); a row past the logged request's
``n_rows`` is refused when the log row is known at store time, ignored otherwise.

**Ground truth.** A feedback row is ground truth when it carries a ``label`` or a ``value``
that is not an experiment's ``success`` outcome (stored as ``value`` 1/0 with
``outcome = {"success": …}``).

**Windows by prediction time.** :func:`labelled_predictions` selects by the *prediction's*
``ts``, so a label arriving days later updates the window its prediction fell in. Works on
SQLite and PostgreSQL alike (correlated subqueries, no dialect-specific SQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from sibyl.errors import InvalidInputError
from sibyl.store._schema import feedback, prediction_log

OK = "ok"
"""``prediction_log.status`` of an answered request."""
DEFAULT_LIMIT = 200_000
"""Most feedback rows one :func:`labelled_predictions` call reads (the newest first)."""
KEY_SETTLE_S = 300.0
"""Seconds after ``event_at`` before a routing key's attribution is stored (see above)."""
_CHUNK = 500  # ids per IN (...) list

fb = feedback
pl = prediction_log


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """One feedback row joined to the logged prediction it is about.

    ``row`` is ``None`` for every row of the request; ``value`` is ``None`` when the feedback's
    numeric value was an experiment's ``success`` outcome (not ground truth).
    """

    feedback_id: int
    prediction_id: str
    ts: datetime
    """When the prediction was made (windows are by this time)."""
    version: str
    n_rows: int
    row: int | None
    label: str | None
    value: float | None


@dataclass(frozen=True, slots=True)
class LabelledPredictions:
    """Ground truth of one model's predictions made in a time range.

    ``outputs`` maps every joined prediction id to its logged ``outputs`` JSON
    (``{"predictions": [...], "probabilities": [[...]], "classes": [...]}``); ``predicted_rows``
    maps each version to the rows it answered successfully in the range (labelled or not);
    ``truncated`` is true when more than ``limit`` feedback rows matched (the newest were kept).
    """

    truths: list[GroundTruth]
    outputs: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    predicted_rows: dict[str, int] = field(default_factory=dict)
    truncated: bool = False


# ---- attribution -------------------------------------------------------------------------


def _by_request() -> sa.ScalarSelect[Any]:
    """The log row of the outer feedback row's request id (correlated)."""
    log = pl.alias("by_request")
    return (
        sa.select(log.c.id)
        .where(log.c.request_id == fb.c.request_id, log.c.model == fb.c.model)
        .order_by(log.c.ts.desc(), log.c.id.desc())
        .limit(1)
        .correlate(fb)
        .scalar_subquery()
    )


def _by_key(settled: datetime | None = None) -> sa.ScalarSelect[Any]:
    """The routing key's latest successful prediction at or before the outer feedback row's
    ``event_at`` (correlated; only for feedback without a request id, and with ``settled``
    only when ``event_at`` is at or before it)."""
    log = pl.alias("by_key")
    settle = [] if settled is None else [fb.c.event_at <= settled]
    return (
        sa.select(log.c.id)
        .where(
            fb.c.request_id.is_(None),
            *settle,
            log.c.model == fb.c.model,
            log.c.routing_key == fb.c.routing_key,
            log.c.ts <= fb.c.event_at,
            log.c.status == OK,
        )
        .order_by(log.c.ts.desc(), log.c.id.desc())
        .limit(1)
        .correlate(fb)
        .scalar_subquery()
    )


def _attributable() -> sa.ColumnElement[bool]:
    return sa.and_(
        fb.c.prediction_id.is_(None),
        sa.or_(
            fb.c.request_id.is_not(None),
            sa.and_(fb.c.routing_key.is_not(None), fb.c.event_at.is_not(None)),
        ),
    )


def _attribute(conn: sa.Connection, where: sa.ColumnElement[bool], now: datetime) -> int:
    """Set ``prediction_id`` on the unattributed feedback rows matching ``where`` whose log row
    exists now; returns how many were attributed."""
    settled = now - timedelta(seconds=KEY_SETTLE_S)
    resolved = sa.func.coalesce(_by_request(), _by_key(settled))
    stmt = (
        fb.update()
        .where(_attributable(), where, resolved.is_not(None))
        .values(prediction_id=resolved)
    )
    return int(conn.execute(stmt).rowcount or 0)


def store_feedback(conn: sa.Connection, rows: list[dict[str, Any]], now: datetime) -> list[int]:
    """Insert feedback ``rows`` (in order), attribute those whose prediction is logged, and
    refuse (``InvalidInputError``, nothing kept: call inside the write transaction) a ``row``
    index past the attributed prediction's rows. Returns the new ids in input order."""
    if not rows:
        return []
    stmt = fb.insert().returning(fb.c.id, sort_by_parameter_order=True)
    ids = [int(i) for i in conn.execute(stmt, rows).scalars()]
    for chunk in _chunks(ids):
        _attribute(conn, fb.c.id.in_(chunk), now)
    _check_rows(conn, ids)
    return ids


def _check_rows(conn: sa.Connection, ids: list[int]) -> None:
    index = {fid: i for i, fid in enumerate(ids)}
    for chunk in _chunks(ids):
        query = (
            sa.select(fb.c.id, fb.c.row, pl.c.n_rows, pl.c.request_id)
            .join_from(fb, pl, pl.c.id == fb.c.prediction_id)
            .where(fb.c.id.in_(chunk), fb.c.row.is_not(None), fb.c.row >= pl.c.n_rows)
            .order_by(fb.c.id)
            .limit(1)
        )
        bad = conn.execute(query).first()
        if bad is not None:
            where = f"items[{index[bad.id]}].row" if len(ids) > 1 else "row"
            raise InvalidInputError(
                f"'{where}' is {bad.row} but request '{bad.request_id}' predicted {bad.n_rows} "
                f"row(s); give a row index from 0 to {bad.n_rows - 1}, or leave 'row' out to "
                "label every row",
                field=where,
            )


def attribute_pending(conn: sa.Connection, since: datetime | None, now: datetime) -> int:
    """Attribute feedback received at or after ``since`` (all when ``None``) whose prediction
    has been logged since it arrived; returns how many rows were attributed."""
    where = sa.true() if since is None else fb.c.received_at >= since
    return _attribute(conn, where, now)


# ---- the join -------------------------------------------------------------------------------

_COLUMNS = (
    fb.c.id.label("feedback_id"),
    fb.c.row,
    fb.c.label,
    fb.c.value,
    fb.c.outcome,
    pl.c.id.label("prediction_id"),
    pl.c.ts,
    pl.c.version,
    pl.c.n_rows,
)


def labelled_predictions(
    conn: sa.Connection,
    model: str,
    since: datetime,
    until: datetime,
    version: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> LabelledPredictions:
    """Ground truth for ``model``'s successful predictions with ``since <= ts < until`` (of one
    ``version`` when given), joined by the attribution rules of the module docstring; each
    feedback row at most once (to its latest matching log row)."""
    window = [pl.c.model == model, pl.c.ts >= since, pl.c.ts < until, pl.c.status == OK]
    if version is not None:
        window.append(pl.c.version == version)
    truth = sa.or_(fb.c.label.is_not(None), fb.c.value.is_not(None))
    mine = [fb.c.model == model, truth]
    joins = [
        pl.c.id == fb.c.prediction_id,
        sa.and_(
            fb.c.prediction_id.is_(None),
            pl.c.request_id == fb.c.request_id,
            pl.c.model == fb.c.model,
        ),
        sa.and_(fb.c.prediction_id.is_(None), fb.c.event_at >= since, pl.c.id == _by_key()),
    ]
    found: dict[int, Any] = {}
    truncated = False
    for on in joins:
        query = (
            sa.select(*_COLUMNS)
            .join_from(fb, pl, on)
            .where(*window, *mine)
            .order_by(fb.c.id.desc())
            .limit(limit + 1)
        )
        rows = conn.execute(query).all()
        truncated = truncated or len(rows) > limit
        for row in rows[:limit]:
            _keep_latest(found, row)
    newest = sorted(found, reverse=True)[:limit]
    truths = [
        t for t in (_truth(found[i]) for i in newest) if t.label is not None or t.value is not None
    ]
    return LabelledPredictions(
        truths,
        _outputs(conn, {t.prediction_id for t in truths}),
        predicted_rows(conn, window),
        truncated or len(found) > limit,
    )


def _keep_latest(found: dict[int, Any], row: Any) -> None:
    """A request id logged twice (a retry with the same ``X-Request-ID``): its latest log row."""
    old = found.get(row.feedback_id)
    if old is None or (row.ts, row.prediction_id) > (old.ts, old.prediction_id):
        found[row.feedback_id] = row


def _truth(row: sa.Row[Any]) -> GroundTruth:
    outcome = row.outcome
    from_success = isinstance(outcome, dict) and "success" in outcome
    return GroundTruth(
        feedback_id=int(row.feedback_id),
        prediction_id=str(row.prediction_id),
        ts=row.ts,
        version=str(row.version),
        n_rows=int(row.n_rows),
        row=None if row.row is None else int(row.row),
        label=row.label,
        value=None if row.value is None or from_success else float(row.value),
    )


def _outputs(conn: sa.Connection, ids: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    out: dict[str, dict[str, Any] | None] = {}
    for chunk in _chunks(sorted(ids)):
        query = sa.select(pl.c.id, pl.c.outputs).where(pl.c.id.in_(chunk))
        for pid, outputs in conn.execute(query):
            out[str(pid)] = outputs if isinstance(outputs, dict) else None
    return out


def predicted_rows(conn: sa.Connection, window: Sequence[sa.ColumnElement[bool]]) -> dict[str, int]:
    """Version → rows answered successfully by the log rows matching ``window``."""
    query = sa.select(pl.c.version, sa.func.sum(pl.c.n_rows)).where(*window).group_by(pl.c.version)
    return {str(v): int(n or 0) for v, n in conn.execute(query)}


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
