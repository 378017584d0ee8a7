"""``SQLRuleRepository``: rules and alert states in sibyl's store (SQLite or PostgreSQL),
tables ``alert_rules`` and ``alert_states`` (migration ``0003``). Writes on SQLite open with
``BEGIN IMMEDIATE`` like the store's own; connection failures become
:class:`~sibyl.errors.BackendUnavailableError`."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from sibyl.errors import InvalidInputError
from sibyl.monitoring.alerts._repository import existing_rule, missing_rule
from sibyl.monitoring.alerts._rules import Rule
from sibyl.monitoring.alerts._state import Alert, AlertState
from sibyl.store import _migrate
from sibyl.store._engine import SQLITE_BEGIN, create_engine, display_url, parse_url
from sibyl.store._engine import translate_errors as _translate
from sibyl.store._schema import alert_rules, alert_states

_RULE_COLUMNS = (
    "name", "metric", "condition", "threshold", "window_s", "for_s", "keep_firing_for_s",
    "severity", "labels", "message", "annotations", "enabled",
)  # fmt: skip
_TIMES = ("active_at", "fired_at", "keep_firing_since", "resolved_at", "last_evaluated_at",
          "notified_at")  # fmt: skip


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SQLRuleRepository:
    """:class:`~sibyl.monitoring.alerts.RuleRepository` and
    :class:`~sibyl.monitoring.alerts.AlertStateStore` on a store URL or an existing engine
    (``SQLStore.engine``: then :meth:`close` leaves it open). The tables come from the store's
    migrations (:meth:`migrate` runs them, as ``Store.migrate()`` does)."""

    def __init__(self, target: str | sa.Engine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._owned = isinstance(target, str)
        self._engine = create_engine(parse_url(target)) if isinstance(target, str) else target
        self._now = clock

    def __repr__(self) -> str:
        return f"SQLRuleRepository({display_url(self._engine)!r})"

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (for migrations tooling and tests)."""
        return self._engine

    def migrate(self) -> None:
        """Bring the store's schema to head (the alert tables included)."""
        _migrate.migrate(self._engine)

    def close(self) -> None:
        """Dispose of the engine when this repository created it."""
        if self._owned:
            self._engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with _translate(self._engine), self._engine.connect() as conn:
            conn.execution_options(**{SQLITE_BEGIN: "BEGIN IMMEDIATE"})
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with _translate(self._engine), self._engine.connect() as conn:
            yield conn

    # ---- rules -----------------------------------------------------------------------------

    def add_rule(self, rule: Rule) -> Rule:
        now = self._now()
        try:
            with self._write() as conn:
                conn.execute(alert_rules.insert(), _rule_row(rule, created=now, updated=now))
        except IntegrityError as error:
            raise existing_rule(rule.name) from error
        return rule

    def replace_rule(self, rule: Rule) -> Rule:
        row = _rule_row(rule, created=None, updated=self._now())
        with self._write() as conn:
            query = alert_rules.update().where(alert_rules.c.name == rule.name).values(row)
            if conn.execute(query).rowcount == 0:
                raise missing_rule(rule.name)
        return rule

    def delete_rule(self, name: str) -> None:
        with self._write() as conn:
            if conn.execute(alert_rules.delete().where(alert_rules.c.name == name)).rowcount == 0:
                raise missing_rule(name)

    def get_rule(self, name: str) -> Rule:
        with self._read() as conn:
            row = (
                conn.execute(sa.select(alert_rules).where(alert_rules.c.name == name))
                .mappings()
                .first()
            )
        if row is None:
            raise missing_rule(name)
        return _rule_of(row)

    def list_rules(self) -> list[Rule]:
        with self._read() as conn:
            rows = conn.execute(sa.select(alert_rules).order_by(alert_rules.c.name)).mappings()
            return [_rule_of(row) for row in rows]

    # ---- alert states ----------------------------------------------------------------------

    def load_alerts(self) -> list[Alert]:
        with self._read() as conn:
            return [_alert_of(row) for row in conn.execute(sa.select(alert_states)).mappings()]

    def save_alerts(self, upserts: Sequence[Alert], deletes: Sequence[tuple[str, str]]) -> None:
        keys = list(deletes) + [(a.rule, a.fingerprint) for a in upserts]
        if not keys:
            return
        key = sa.tuple_(alert_states.c.rule, alert_states.c.fingerprint)
        with self._write() as conn:
            for start in range(0, len(keys), 500):  # bounded IN lists
                conn.execute(alert_states.delete().where(key.in_(keys[start : start + 500])))
            if upserts:
                conn.execute(alert_states.insert(), [_alert_row(a) for a in upserts])


def _rule_row(rule: Rule, *, created: datetime | None, updated: datetime) -> dict[str, Any]:
    row = {column: getattr(rule, column) for column in _RULE_COLUMNS}
    row.update(labels=dict(rule.labels), annotations=dict(rule.annotations),
               condition=rule.condition.value, severity=rule.severity.value,
               updated_at=updated)  # fmt: skip
    if created is not None:
        row["created_at"] = created
    return row


def _rule_of(row: sa.RowMapping) -> Rule:
    try:
        return Rule(**{column: row[column] for column in _RULE_COLUMNS})
    except InvalidInputError as error:  # a row edited by hand, or by a newer sibyl
        raise InvalidInputError(
            f"Stored alert rule '{row['name']}' is invalid ({error.message}); "
            "fix or delete it", field=error.field,
        ) from error  # fmt: skip


def _alert_row(alert: Alert) -> dict[str, Any]:
    row: dict[str, Any] = {name: getattr(alert, name) for name in _TIMES}
    value = alert.value
    row.update(
        rule=alert.rule, fingerprint=alert.fingerprint, state=alert.state.value,
        labels=dict(alert.labels), annotations=dict(alert.annotations),
        value=None if value is None or math.isnan(value) else value, no_data=alert.no_data,
        notified_state=alert.notified_state.value if alert.notified_state else None,
    )  # fmt: skip
    return row


def _alert_of(row: sa.RowMapping) -> Alert:
    notified = row["notified_state"]
    return Alert(
        row["rule"], row["fingerprint"], AlertState(row["state"]), dict(row["labels"]),
        dict(row["annotations"]), row["value"], no_data=row["no_data"],
        notified_state=AlertState(notified) if notified else None,
        **{name: row[name] for name in _TIMES},
    )  # fmt: skip
