"""Shadow statistics: row comparison, the agreement interval, the gate's checks, the config and
the report shape (pure functions, no I/O)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import numpy as np
import pytest

from sibyl.errors import InvalidInputError
from sibyl.runtime.types import Prediction, Task
from sibyl.service import NewExperiment
from sibyl.service._shadow_config import ShadowConfig, validate_shadow
from sibyl.service._shadow_report import shadow_report
from sibyl.service._shadow_stats import (
    AgreementRule,
    agreeing_rows,
    agreement_interval,
    judge,
    latency_increase,
)
from sibyl.settings import PromotionGateSettings
from sibyl.store import (
    Experiment,
    ExperimentKind,
    ExperimentStatus,
    LatencyPair,
    ShadowAggregate,
    Variant,
)

AUTO, LABEL, TOL = AgreementRule.AUTO, AgreementRule.LABEL, AgreementRule.TOLERANCE


def pred(values: list[object], dtype: object = None) -> Prediction:
    return Prediction(np.asarray(values, dtype=dtype))


# ---- comparison --------------------------------------------------------------------------


def test_classifier_labels_agree_when_equal() -> None:
    a, b = pred([0, 1, 1, 0]), pred([0, 1, 0, 0])
    assert agreeing_rows(a, b, AUTO, 0.0, Task.CLASSIFIER) == 3
    assert agreeing_rows(pred(["cat", "dog"]), pred(["cat", "cow"]), LABEL, 0, Task.OTHER) == 1
    assert agreeing_rows(pred([1, 2]), pred([1.0, 2.0]), LABEL, 0, Task.CLASSIFIER) == 2
    assert agreeing_rows(pred([1, 2]), pred(["1", "2"]), LABEL, 0, Task.CLASSIFIER) == 0


def test_regressors_agree_within_the_tolerance() -> None:
    a, b = pred([1.0, 2.0, 3.0, np.nan]), pred([1.05, 2.2, 3.0, np.nan])
    assert agreeing_rows(a, b, AUTO, 0.1, Task.REGRESSOR) == 3  # NaN = NaN, 2.2 is too far
    assert agreeing_rows(a, b, AUTO, 0.0, Task.REGRESSOR) == 2
    assert agreeing_rows(a, b, LABEL, 1.0, Task.REGRESSOR) == 1  # labels: exact (NaN ≠ NaN)


def test_multi_output_rows_agree_only_when_every_value_does() -> None:
    a = pred([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    b = pred([[1.0, 2.0], [3.0, 4.5], [5.0, 6.0]])
    assert agreeing_rows(a, b, TOL, 0.1, Task.OTHER) == 2
    assert agreeing_rows(a, pred([[1.0], [3.0], [5.0]]), TOL, 0.1, Task.OTHER) == 0


def test_object_rows_are_compared_one_by_one() -> None:
    a = pred([{"p": 1}, {"p": 2}, "x"], dtype=object)
    b = pred([{"p": 1}, {"p": 3}, "x"], dtype=object)
    assert agreeing_rows(a, b, AUTO, 0.0, Task.OTHER) == 2
    arrays = pred([np.array([1.0, 2.0]), np.array([1.0])], dtype=object)
    same = pred([np.array([1.0, 2.0 + 1e-9]), np.array([2.0])], dtype=object)
    assert agreeing_rows(arrays, same, TOL, 1e-6, Task.OTHER) == 1


def test_a_different_number_of_rows_is_an_error_not_a_disagreement() -> None:
    with pytest.raises(ValueError, match="3 rows for 2"):
        agreeing_rows(pred([1, 2]), pred([1, 2, 3]), AUTO, 0, Task.CLASSIFIER)


# ---- the agreement interval --------------------------------------------------------------


def aggregate(
    per_request: list[tuple[int, int]], variant: str = "candidate", **kw: object
) -> ShadowAggregate:
    """An aggregate of compared requests given as (rows, agreeing rows)."""
    return ShadowAggregate(
        variant,
        "churn",
        "2",
        compared=len(per_request),
        rows=sum(n for n, _ in per_request),
        agreeing_rows=sum(a for _, a in per_request),
        unanimous=sum(a == n for n, a in per_request),
        rows_sq=float(sum(n * n for n, _ in per_request)),
        agreeing_sq=float(sum(a * a for _, a in per_request)),
        cross=float(sum(n * a for n, a in per_request)),
        **kw,  # type: ignore[arg-type]
    )


def test_single_row_requests_give_the_textbook_wilson_interval() -> None:
    agg = aggregate([(1, 1)] * 90 + [(1, 0)] * 10)
    found = agreement_interval(agg)
    assert found is not None
    # Wilson 95 % for 90/100: [0.8256, 0.9448]
    assert found.rate == 0.9
    assert found.low == pytest.approx(0.8256, abs=1e-4)
    assert found.high == pytest.approx(0.9448, abs=1e-4)
    assert found.effective_n == pytest.approx(100, rel=0.02)


def test_rows_that_agree_together_count_as_one_observation() -> None:
    # 100 requests of 10 rows each, every request all-or-nothing: 100 observations, not 1000
    clustered = agreement_interval(aggregate([(10, 10)] * 90 + [(10, 0)] * 10))
    independent = agreement_interval(aggregate([(1, 1)] * 900 + [(1, 0)] * 100))
    assert clustered is not None and independent is not None
    assert clustered.rate == independent.rate == 0.9
    assert clustered.effective_n == pytest.approx(100, rel=0.02)
    assert clustered.high - clustered.low > 2.5 * (independent.high - independent.low)


def test_all_agreeing_counts_requests_and_still_has_an_interval() -> None:
    found = agreement_interval(aggregate([(10, 10)] * 50))
    assert found is not None
    assert (found.rate, found.high, found.effective_n) == (1.0, 1.0, 50)
    assert 0.9 < found.low < 1.0
    assert agreement_interval(aggregate([])) is None


def test_the_interval_covers_the_true_rate_about_95_percent_of_the_time() -> None:
    rng, covered, runs = random.Random(7), 0, 2000
    true_rate = 0.8 * 0.99 + 0.2 * 0.5  # rows per request do not depend on the request's rate
    for _ in range(runs):
        requests = []
        for _ in range(60):  # requests of 1–5 rows whose agreement depends on the request
            n, q = rng.randint(1, 5), (0.99 if rng.random() < 0.8 else 0.5)
            requests.append((n, sum(rng.random() < q for _ in range(n))))
        found = agreement_interval(aggregate(requests))
        assert found is not None
        covered += found.low <= true_rate <= found.high
    assert 0.93 <= covered / runs <= 0.975


# ---- the gate's checks -------------------------------------------------------------------


def test_judge_names_every_failed_criterion() -> None:
    latency = LatencyPair(primary_p95=10.0, candidate_p95=13.0)
    agg = aggregate([(1, 1)] * 90 + [(1, 0)] * 10, errors=5, latency=latency)
    criteria = PromotionGateSettings(
        min_requests=200, min_agreement=0.95, max_error_rate=0.01, max_latency_increase=0.2
    )
    checks = {c.criterion: c for c in judge(criteria, agg)}
    assert [(name, c.passed) for name, c in checks.items()] == [
        ("min_requests", False),
        ("min_agreement", False),
        ("max_error_rate", False),
        ("max_latency_increase", False),
    ]
    assert checks["min_requests"].actual == 105 and "105 < 200" in checks["min_requests"].message
    assert checks["min_agreement"].message == "agreement 0.9 < 0.95"
    assert checks["max_error_rate"].actual == pytest.approx(5 / 105)
    assert checks["max_latency_increase"].actual == pytest.approx(0.3)
    loose = PromotionGateSettings(
        min_requests=100, min_agreement=0.9, max_error_rate=0.05, max_latency_increase=0.5
    )
    assert all(c.passed for c in judge(loose, agg))


def test_unset_criteria_are_not_checked_and_nothing_measured_fails() -> None:
    criteria = PromotionGateSettings(min_requests=0, min_agreement=None, max_error_rate=None)
    assert [c.criterion for c in judge(criteria, aggregate([]))] == ["min_requests"]
    empty = judge(PromotionGateSettings(min_requests=0), aggregate([]))
    assert [c.passed for c in empty] == [True, False, False]
    assert "nothing measured yet" in empty[1].message


def test_latency_increase_is_relative_to_the_primary_p95() -> None:
    assert latency_increase(
        aggregate([], latency=LatencyPair(primary_p95=20, candidate_p95=15))
    ) == pytest.approx(-0.25)
    assert latency_increase(aggregate([])) is None
    zero = latency_increase(aggregate([], latency=LatencyPair(primary_p95=0, candidate_p95=1)))
    assert zero is not None and math.isfinite(zero)


# ---- configuration -----------------------------------------------------------------------


def test_config_defaults_and_errors_name_the_field() -> None:
    config = ShadowConfig.parse({"share": 0.2})
    assert config.to_json() == {
        "share": 0.2,
        "agreement": "auto",
        "tolerance": 1e-6,
        "max_concurrent": 16,
        "timeout_ms": 2000.0,
    }
    bad = [
        ({}, "config.share"),
        ({"share": 0}, "config.share"),
        ({"share": 1.5}, "config.share"),
        ({"share": True}, "config.share"),
        ({"share": 0.5, "agreement": "cosine"}, "config.agreement"),
        ({"share": 0.5, "tolerance": -1}, "config.tolerance"),
        ({"share": 0.5, "max_concurrent": 2.5}, "config.max_concurrent"),
        ({"share": 0.5, "timeout_ms": 0}, "config.timeout_ms"),
        ({"share": 0.5, "sahre": 1}, "config.sahre"),
    ]
    for raw, field in bad:
        with pytest.raises(InvalidInputError) as info:
            ShadowConfig.parse(raw)
        assert info.value.field == field, raw


def test_the_validator_checks_the_primary_and_the_candidates() -> None:
    def spec(*variants: Variant, model: str = "churn") -> NewExperiment:
        return NewExperiment("s", model, variants, kind=ExperimentKind.SHADOW, config={"share": 1})

    primary = Variant("primary", "", alias="production", is_control=True)
    assert validate_shadow(spec(primary, Variant("c", "", version="2")))["share"] == 1.0
    assert validate_shadow(spec(primary, Variant("c", "other", version="1")))["share"] == 1.0
    with pytest.raises(InvalidInputError, match="the primary itself"):
        validate_shadow(spec(primary, Variant("c", "", alias="production")))
    with pytest.raises(InvalidInputError, match="must be model 'churn'"):
        validate_shadow(spec(Variant("p", "x", version="1", is_control=True), primary))


# ---- the report --------------------------------------------------------------------------


def test_the_report_lists_every_candidate_with_its_verdict() -> None:
    now = datetime.now(UTC)
    exp = Experiment(
        id=1,
        name="churn-shadow",
        model="churn",
        kind=ExperimentKind.SHADOW,
        status=ExperimentStatus.RUNNING,
        salt="s",
        routing={"share": 0.5, "description": "added by create()"},
        success_metrics=[],
        variants=(
            Variant("primary", "churn", alias="production", is_control=True),
            Variant("a", "churn", version="2"),
            Variant("b", "churn", version="3"),
        ),
        created_at=now,
        updated_at=now,
        started_at=now,
    )
    lat = LatencyPair(10.0, 12.0, 11.0, 15.0, 1.0, 3.0)
    agg = aggregate([(1, 1)] * 10, "a", dropped=2, latency=lat, first_at=now, last_at=now)
    report = shadow_report(exp, [agg], PromotionGateSettings(min_requests=5), "defaults")
    a, b = report["candidates"]
    assert (a["variant"], a["version"], a["mirrored"], a["dropped"]) == ("a", "2", 10, 2)
    assert a["agreement"]["rate"] == 1.0 and a["gate"]["passed"] is True
    assert a["latency_ms"]["difference"] == {"p50": 1.0, "p95": 3.0}
    assert a["latency_ms"]["paired_difference"] == {"p50": 1.0, "p95": 3.0}
    assert a["latency_ms"]["p95_increase"] == pytest.approx(0.25)
    assert (b["variant"], b["version"], b["mirrored"], b["agreement"]) == ("b", "3", 0, None)
    assert b["gate"]["passed"] is False and report["passed"] is False
    assert report["config"]["share"] == 0.5 and report["criteria"]["source"] == "defaults"
