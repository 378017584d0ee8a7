"""Pure parts of the registry: stages, semver, gates, alias diffs (no MLflow needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sibyl.errors import InvalidInputError
from sibyl.registry import AliasChange, Gate, Stage, diff_aliases
from sibyl.registry._mlflow import redact, stage_of
from sibyl.registry._stages import evaluate_gate
from sibyl.registry._types import parse_stage, validate_semver


def test_stage_values_and_aliases() -> None:
    assert [s.value for s in Stage] == ["draft", "staging", "production", "archived"]
    assert Stage.PRODUCTION.alias == "production"
    assert Stage.STAGING.alias == "staging"
    assert Stage.DRAFT.alias is None
    assert Stage.ARCHIVED.alias is None


def test_parse_stage_accepts_any_case_and_names_valid_ones() -> None:
    assert parse_stage("Production") is Stage.PRODUCTION
    assert parse_stage(Stage.ARCHIVED) is Stage.ARCHIVED
    with pytest.raises(InvalidInputError, match=r"'prod'.*draft, staging, production, archived"):
        parse_stage("prod")


@pytest.mark.parametrize("good", ["0.0.0", "1.2.3", "10.20.30", " 2.0.1 "])
def test_semver_valid(good: str) -> None:
    assert validate_semver(good) == good.strip()


@pytest.mark.parametrize("bad", ["1.2", "01.2.3", "1.2.3.4", "v1.2.3", "1.2.x", "", "1.2.3-rc1"])
def test_semver_invalid_names_the_value_and_the_format(bad: str) -> None:
    with pytest.raises(InvalidInputError, match=r"MAJOR\.MINOR\.PATCH") as err:
        validate_semver(bad)
    assert f"'{bad}'" in err.value.message
    assert err.value.field == "semver"


def test_gate_rejects_negative_tolerance_and_empty_metric() -> None:
    with pytest.raises(InvalidInputError, match="tolerance"):
        Gate("accuracy", tolerance=-0.1)
    with pytest.raises(InvalidInputError, match="metric"):
        Gate("")


def test_gate_passes_without_production() -> None:
    result = evaluate_gate(Gate("accuracy"), 0.5, None, None)
    assert result.passed
    assert "no production version" in result.message


def test_gate_higher_is_better() -> None:
    gate = Gate("accuracy", tolerance=0.02)
    assert evaluate_gate(gate, 0.95, 0.90, "2").passed
    within = evaluate_gate(gate, 0.89, 0.90, "2")
    assert within.passed
    assert "within the tolerance" in within.message
    worse = evaluate_gate(gate, 0.85, 0.90, "2")
    assert not worse.passed
    assert (worse.candidate_value, worse.production_value) == (0.85, 0.90)
    assert "accuracy 0.85 vs 0.9 of production version 2" in worse.message
    assert "more than the tolerance 0.02" in worse.message


def test_gate_lower_is_better() -> None:
    gate = Gate("rmse", higher_is_better=False)
    assert evaluate_gate(gate, 1.0, 1.2, "4").passed
    assert not evaluate_gate(gate, 1.3, 1.2, "4").passed
    assert evaluate_gate(Gate("rmse", False, 0.2), 1.3, 1.2, "4").passed


def test_gate_missing_metrics() -> None:
    refused = evaluate_gate(Gate("auc"), None, 0.9, "1")
    assert not refused.passed
    assert "log it with mlflow.log_metric('auc'" in refused.message
    assert evaluate_gate(Gate("auc"), 0.7, None, "1").passed
    assert not evaluate_gate(Gate("auc"), float("nan"), 0.9, "1").passed


def test_diff_aliases_reports_appeared_moved_disappeared() -> None:
    old = {"churn": {"production": "1", "staging": "2"}, "gone": {"production": "5"}}
    new = {"churn": {"production": "2", "canary": "3"}, "fresh": {}}
    assert diff_aliases(old, new) == [
        AliasChange("churn", "canary", None, "3"),
        AliasChange("churn", "production", "1", "2"),
        AliasChange("churn", "staging", "2", None),
        AliasChange("gone", "production", "5", None),
    ]
    assert diff_aliases(new, new) == []


@pytest.mark.parametrize(("aliases", "tag", "stage"), [
    ((), None, Stage.DRAFT),
    ((), "archived", Stage.ARCHIVED),
    (("production",), None, Stage.PRODUCTION),
    (("champion", "staging"), "draft", Stage.STAGING),
    ((), "production", Stage.ARCHIVED),  # alias moved away by someone else: stale tag
    ((), "staging", Stage.DRAFT),
    ((), "nonsense", Stage.DRAFT),
])
def test_stage_of_trusts_aliases_over_tags(aliases: tuple[str, ...], tag: str | None,
                                           stage: Stage) -> None:
    assert stage_of(aliases, tag) is stage


def test_redact_hides_passwords_only() -> None:
    assert redact("postgresql://u:secret@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert redact("sqlite:///tmp/mlflow.db") == "sqlite:///tmp/mlflow.db"
    assert redact("http://host:5000") == "http://host:5000"


def test_importing_the_package_does_not_import_mlflow() -> None:
    code = "import sys, sibyl.registry; assert 'mlflow' not in sys.modules, 'mlflow imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
