"""The alert ``RuleRepository`` / ``AlertStateStore`` contract on every backend: in memory,
SQLite (a file under tmp_path) and the REAL PostgreSQL on 127.0.0.1:5432 (a fresh database,
dropped at the end); plus the alert migration (0003) up and down."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from sibyl.errors import ConflictError, NotFoundError
from sibyl.monitoring.alerts import (
    Alert,
    AlertEngine,
    AlertState,
    GroupingPolicy,
    InMemoryRuleRepository,
    MetricFunctions,
    Rule,
    SQLRuleRepository,
    get_rule_repository,
)
from sibyl.store import SQLStore, head_revision
from sibyl.store._migrate import alembic_config, current_revision
from tests.contract.store_support import postgres_backend, sqlite_backend

_POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module", params=["memory", "sqlite", _POSTGRES])
def repo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[InMemoryRuleRepository | SQLRuleRepository]:
    if request.param == "memory":
        yield InMemoryRuleRepository()
        return
    backend = (sqlite_backend(tmp_path_factory.mktemp("alerts")) if request.param == "sqlite"
               else postgres_backend())
    with backend.empty() as url:
        r = SQLRuleRepository(url)
        r.migrate()
        yield r
        r.close()


def new_rule(**kwargs: object) -> Rule:
    data: dict[str, object] = {
        "name": f"churn:{uuid.uuid4().hex[:8]}", "metric": "latency_p95_ms", "condition": ">=",
        "threshold": 100.5, "window": "10m", "for": "2m", "keep_firing_for": "30s",
        "severity": "critical", "labels": {"model": "churn", "team": "ml"},
        "message": "{model}: {value:.1f}", "annotations": {"runbook": "https://wiki/{model}"},
        "enabled": False,
    }  # fmt: skip
    data.update(kwargs)
    return Rule.from_dict(data)


def test_rules_round_trip_every_field(repo: InMemoryRuleRepository) -> None:
    rule = new_rule()
    assert repo.add_rule(rule) == rule
    assert repo.get_rule(rule.name) == rule
    assert repo.get_rule(rule.name).to_dict() == rule.to_dict()


def test_rule_crud_and_its_errors(repo: InMemoryRuleRepository) -> None:
    a, b = new_rule(name=f"a-{uuid.uuid4().hex[:6]}"), new_rule(name=f"b-{uuid.uuid4().hex[:6]}")
    repo.add_rule(b)
    repo.add_rule(a)
    names = [r.name for r in repo.list_rules()]
    assert names == sorted(names) and {a.name, b.name} <= set(names)
    with pytest.raises(ConflictError, match="already exists"):
        repo.add_rule(a.evolve(threshold=1.0))
    assert repo.replace_rule(a.evolve(threshold=1.0)).threshold == 1.0
    assert repo.get_rule(a.name).threshold == 1.0
    repo.delete_rule(a.name)
    for call in (lambda: repo.get_rule(a.name), lambda: repo.delete_rule(a.name),
                 lambda: repo.replace_rule(a)):  # fmt: skip
        with pytest.raises(NotFoundError, match=f"'{a.name}' does not exist"):
            call()
    assert a.name not in {r.name for r in repo.list_rules()}


def alert(rule: str, model: str, **kwargs: object) -> Alert:
    labels = {"alertname": rule, "severity": "warning", "model": model}
    fields: dict[str, object] = {
        "rule": rule, "fingerprint": uuid.uuid4().hex[:16], "state": AlertState.FIRING,
        "labels": labels, "annotations": {"summary": "slow"}, "value": 153.5,
        "active_at": T0, "fired_at": T0 + timedelta(seconds=60),
    }  # fmt: skip
    fields.update(kwargs)
    return Alert(**fields)  # type: ignore[arg-type]


def test_alert_states_upsert_delete_and_load(repo: InMemoryRuleRepository) -> None:
    rule = f"r-{uuid.uuid4().hex[:6]}"
    a = alert(rule, "churn", notified_at=T0 + timedelta(seconds=90),
              notified_state=AlertState.FIRING, keep_firing_since=T0 + timedelta(seconds=95))
    b = alert(rule, "dkt", state=AlertState.PENDING, value=float("nan"), no_data=True,
              fired_at=None)
    repo.save_alerts([a, b], [])
    mine = {x.fingerprint: x for x in repo.load_alerts() if x.rule == rule}
    assert mine[a.fingerprint] == a
    assert mine[b.fingerprint].value is None or math.isnan(mine[b.fingerprint].value or 0.0)
    assert mine[b.fingerprint].no_data and mine[b.fingerprint].fired_at is None
    assert mine[a.fingerprint].fired_at.tzinfo is not None  # type: ignore[union-attr]
    resolved = alert(rule, "churn", fingerprint=a.fingerprint, state=AlertState.RESOLVED,
                     resolved_at=T0 + timedelta(seconds=300))
    repo.save_alerts([resolved], [(rule, b.fingerprint)])
    assert [x for x in repo.load_alerts() if x.rule == rule] == [resolved]
    repo.save_alerts([], [(rule, a.fingerprint), (rule, "no-such")])
    assert [x for x in repo.load_alerts() if x.rule == rule] == []


def test_an_engine_restarted_on_the_repository_keeps_its_alerts(
    repo: InMemoryRuleRepository,
) -> None:
    values = {"v": 150.0}
    source = MetricFunctions({"latency_p95_ms": lambda labels, window_s: values["v"]})
    policy = GroupingPolicy(group_wait_s=0, group_interval_s=0, repeat_interval_s=3600)
    rule = new_rule(enabled=True, **{"for": 0, "keep_firing_for": 0})
    first = AlertEngine(repo, source, grouping=policy)
    first.create_rule(rule)
    [note] = first.evaluate_once(T0)
    second = AlertEngine(repo, source, grouping=policy)  # a restart
    assert second.evaluate_once(T0 + timedelta(seconds=10)) == []  # already announced
    [restored] = [a for a in second.active_alerts() if a.rule == rule.name]
    assert restored.fired_at == T0 and restored.notified_at == T0
    values["v"] = 50.0
    [note] = second.evaluate_once(T0 + timedelta(seconds=20))
    assert note.status == "resolved"
    assert [a for a in repo.load_alerts() if a.rule == rule.name] == []
    repo.delete_rule(rule.name)


def test_get_rule_repository_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(get_rule_repository(None), InMemoryRuleRepository)
    assert isinstance(get_rule_repository("memory://"), InMemoryRuleRepository)
    mine = InMemoryRuleRepository()
    assert get_rule_repository(mine) is mine
    store = SQLStore(f"sqlite:///{tmp_path / 'sibyl.db'}")
    store.migrate()
    on_engine = get_rule_repository(store.engine)
    assert isinstance(on_engine, SQLRuleRepository)
    on_engine.add_rule(new_rule())
    on_engine.close()  # not its engine: stays open for the store
    assert len(get_rule_repository(f"sqlite:///{tmp_path / 'sibyl.db'}").list_rules()) == 1
    store.close()


def test_the_alert_migration_goes_down_and_up_again(tmp_path: Path) -> None:
    from alembic import command

    repo = SQLRuleRepository(f"sqlite:///{tmp_path / 'm.db'}")
    repo.migrate()
    engine = repo.engine
    assert {"alert_rules", "alert_states"} <= set(sa.inspect(engine).get_table_names())
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0002")
    assert not {"alert_rules", "alert_states"} & set(sa.inspect(engine).get_table_names())
    repo.migrate()
    assert current_revision(engine) == head_revision()
    repo.add_rule(new_rule())
    repo.close()
