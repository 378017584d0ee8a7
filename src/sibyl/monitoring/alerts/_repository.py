"""Where rules and alert states live: two small protocols, an in-memory implementation and
:func:`get_rule_repository` to pick one (``None`` → in memory, a URL or SQLAlchemy engine → SQL
on sibyl's store, any other object → used as is).

Both protocols are called from the engine's evaluation thread and from API handlers at the same
time: implementations must be thread-safe. Rules are keyed by name.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import sqlalchemy as sa

from sibyl.errors import ConflictError, NotFoundError
from sibyl.monitoring.alerts._rules import Rule
from sibyl.monitoring.alerts._state import Alert

if TYPE_CHECKING:
    from sibyl.monitoring.alerts._sql import SQLRuleRepository


class RuleRepository(Protocol):
    """Alert rules by name."""

    def add_rule(self, rule: Rule) -> Rule:
        """Store a new rule; ``ConflictError`` when one of that name exists."""
        ...

    def replace_rule(self, rule: Rule) -> Rule:
        """Replace the rule of ``rule.name``; ``NotFoundError`` when there is none."""
        ...

    def delete_rule(self, name: str) -> None:
        """Delete a rule; ``NotFoundError`` when there is none."""
        ...

    def get_rule(self, name: str) -> Rule:
        """The rule called ``name``; ``NotFoundError`` when there is none."""
        ...

    def list_rules(self) -> list[Rule]:
        """Every rule (enabled or not), sorted by name."""
        ...


@runtime_checkable
class AlertStateStore(Protocol):
    """Optional: alert states that survive restarts (``alert_states``)."""

    def load_alerts(self) -> list[Alert]:
        """Every persisted alert."""
        ...

    def save_alerts(self, upserts: Sequence[Alert], deletes: Sequence[tuple[str, str]]) -> None:
        """Insert or replace ``upserts`` and delete the ``(rule, fingerprint)`` keys in
        ``deletes``, all in one transaction."""
        ...


def missing_rule(name: str) -> NotFoundError:
    return NotFoundError(
        f"Alert rule '{name}' does not exist; list the rules with `sibyl alerts rules list`"
    )


def existing_rule(name: str) -> ConflictError:
    return ConflictError(
        f"Alert rule '{name}' already exists; replace it (PUT /v1/alerts/rules/{name}) "
        "or delete it first"
    )


class InMemoryRuleRepository:
    """:class:`RuleRepository` and :class:`AlertStateStore` in this process (lost at exit)."""

    def __init__(self) -> None:
        self._rules: dict[str, Rule] = {}
        self._alerts: dict[tuple[str, str], Alert] = {}
        self._lock = threading.Lock()

    def add_rule(self, rule: Rule) -> Rule:
        with self._lock:
            if rule.name in self._rules:
                raise existing_rule(rule.name)
            self._rules[rule.name] = rule
        return rule

    def replace_rule(self, rule: Rule) -> Rule:
        with self._lock:
            if rule.name not in self._rules:
                raise missing_rule(rule.name)
            self._rules[rule.name] = rule
        return rule

    def delete_rule(self, name: str) -> None:
        with self._lock:
            if self._rules.pop(name, None) is None:
                raise missing_rule(name)

    def get_rule(self, name: str) -> Rule:
        with self._lock:
            rule = self._rules.get(name)
        if rule is None:
            raise missing_rule(name)
        return rule

    def list_rules(self) -> list[Rule]:
        with self._lock:
            return [self._rules[name] for name in sorted(self._rules)]

    def load_alerts(self) -> list[Alert]:
        with self._lock:
            return list(self._alerts.values())

    def save_alerts(self, upserts: Sequence[Alert], deletes: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            for key in deletes:
                self._alerts.pop(key, None)
            for alert in upserts:
                self._alerts[(alert.rule, alert.fingerprint)] = alert


def get_rule_repository(
    target: str | sa.Engine | RuleRepository | None = None,
) -> RuleRepository | InMemoryRuleRepository | SQLRuleRepository:
    """The repository for ``target``:

    * ``None`` or ``"memory://"`` → :class:`InMemoryRuleRepository`;
    * ``"sqlite:///…"`` / ``"postgresql://…"`` or a SQLAlchemy engine (``SQLStore.engine``)
      → :class:`~sibyl.monitoring.alerts.SQLRuleRepository` (tables ``alert_rules`` and
      ``alert_states``, created by the store's migrations);
    * any other object → used as is (it must honour :class:`RuleRepository`).
    """
    if target is None or target == "memory://":
        return InMemoryRuleRepository()
    if isinstance(target, str | sa.Engine):
        from sibyl.monitoring.alerts._sql import SQLRuleRepository

        return SQLRuleRepository(target)
    return target
