"""Latency success metrics: the mean latency of the prediction records, tested with its variance."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sibyl.errors import InvalidInputError
from sibyl.service._results import parse_metrics, results
from sibyl.store import Experiment, ExperimentKind, ExperimentStatus, Variant, VariantAggregate

NOW = datetime(2026, 12, 2, tzinfo=UTC)


def experiment() -> Experiment:
    variants = (
        Variant("control", "churn", "1", None, 1.0, True),
        Variant("candidate", "churn", "2", None, 1.0, False),
    )
    return Experiment(
        1, "lat", "churn", ExperimentKind.AB, ExperimentStatus.RUNNING, "salt", {}, [],
        variants, NOW, NOW, NOW,
    )  # fmt: skip


def agg(name: str, mean: float, var: float, n: int = 5000) -> VariantAggregate:
    return VariantAggregate(
        name, name == "control", 1.0, assigned=0, n=n, errors=0, latency_mean_ms=mean,
        latency_var_ms2=var, latency_p50_ms=mean, latency_p95_ms=mean * 1.5,
        latency_p99_ms=mean * 2,
    )  # fmt: skip


def test_a_slower_candidate_loses_on_a_latency_metric() -> None:
    metrics = parse_metrics(["avg_latency_ms <= 100 weight 0.5"])
    out = results(experiment(), [agg("control", 20.0, 16.0), agg("candidate", 30.0, 16.0)], metrics)
    (comparison,) = out["comparisons"]
    assert comparison["metric"] == "avg_latency_ms" and comparison["findings"] == ["worse"]
    assert comparison["comparison"]["difference"] == pytest.approx(10.0)
    assert comparison["comparison"]["always_valid_p_value"] < 1e-6
    assert out["decision"]["verdict"] == "stop_harm"


def test_equal_latencies_show_no_difference_in_the_latency_metric() -> None:
    metrics = parse_metrics(["avg_latency_ms <= 100", "error_rate <= 0.05"])
    out = results(experiment(), [agg("control", 20.0, 16.0), agg("candidate", 20.0, 16.0)], metrics)
    latency = next(c for c in out["comparisons"] if c["metric"] == "avg_latency_ms")
    assert latency["comparison"]["difference"] == pytest.approx(0.0)
    assert latency["comparison"]["p_value"] == pytest.approx(1.0)
    assert "worse" not in latency["findings"]


def test_one_latency_metric_and_one_feedback_metric_at_most() -> None:
    parse_metrics(["avg_latency_ms <= 100", "success_rate >= 0.9", "error_rate <= 0.01"])
    with pytest.raises(InvalidInputError, match="one latency metric") as exc:
        parse_metrics(["avg_latency_ms <= 100", "latency_ms <= 80"])
    assert exc.value.field == "success_metrics"
