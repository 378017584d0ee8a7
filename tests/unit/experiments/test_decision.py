"""The decision rule on crafted experiments: ship, harm, no difference, keep running, SRM."""

from __future__ import annotations

import json

import pytest

from sibyl.errors import InvalidInputError
from sibyl.experiments import (
    Direction,
    Finding,
    MetricKind,
    Moments,
    Proportion,
    SuccessMetric,
    VariantData,
    Verdict,
    decide,
)

METRICS = (
    SuccessMetric.parse("success_rate >= 0.95 weight 1.0 mde 0.01"),
    SuccessMetric.parse("avg_latency_ms <= 100 weight 0.5 mde 5"),
)


def variant(
    name: str,
    n: int,
    successes: int,
    latency: float,
    *,
    assigned: int | None = None,
    latency_sd: float = 20.0,
) -> VariantData:
    return VariantData(
        name,
        {
            "success_rate": Proportion(n, successes),
            "avg_latency_ms": Moments(n, latency, latency_sd**2),
        },
        assigned=n if assigned is None else assigned,
    )


def test_parse_reads_direction_threshold_weight_and_kind() -> None:
    rate, latency = METRICS
    assert (rate.kind, rate.direction, rate.threshold, rate.weight, rate.mde) == (
        MetricKind.RATE,
        Direction.HIGHER_IS_BETTER,
        0.95,
        1.0,
        0.01,
    )
    assert (latency.kind, latency.direction, latency.weight) == (
        MetricKind.MEAN,
        Direction.LOWER_IS_BETTER,
        0.5,
    )
    relative = SuccessMetric.parse("accuracy ≥ 0.8 relative_mde 0.05")
    assert relative.relative_mde and relative.mde == 0.05
    with pytest.raises(InvalidInputError):
        SuccessMetric.parse("success_rate is high")


def test_ship_when_the_primary_metric_is_significantly_better() -> None:
    decision = decide(
        [variant("control", 20_000, 19_000, 80.0), variant("b", 20_000, 19_400, 80.2)],
        METRICS,
        control="control",
    )
    assert decision.verdict is Verdict.SHIP and decision.variant == "b"
    (reason,) = decision.reasons
    assert reason.metric == "success_rate" and reason.finding is Finding.BETTER
    assert reason.interval is not None and reason.interval.low > 0
    assert reason.always_valid_p is not None and reason.always_valid_p < 0.05
    assert json.loads(json.dumps(decision.to_dict(), allow_nan=False))["verdict"] == "ship"


def test_ship_picks_the_better_of_two_treatments() -> None:
    decision = decide(
        [
            variant("control", 30_000, 28_500, 80.0),
            variant("b", 30_000, 28_550, 80.0),
            variant("c", 30_000, 29_100, 80.0),
        ],
        METRICS,
        control="control",
    )
    assert decision.verdict is Verdict.SHIP and decision.variant == "c"


def test_harm_when_a_variant_is_significantly_worse() -> None:
    decision = decide(
        [variant("control", 20_000, 19_400, 80.0), variant("b", 20_000, 19_100, 80.0)],
        METRICS,
        control="control",
    )
    assert decision.verdict is Verdict.STOP_HARM and decision.variant == "b"
    assert {r.finding for r in decision.reasons} == {Finding.WORSE}
    assert decision.reasons[0].metric == "success_rate"


def test_harm_when_a_guard_threshold_is_confidently_violated() -> None:
    """Latency equal to control's but both far above the 100 ms guard: harm by the guard only."""
    decision = decide(
        [variant("control", 20_000, 19_400, 130.0), variant("b", 20_000, 19_400, 130.0)],
        METRICS,
        control="control",
    )
    assert decision.verdict is Verdict.STOP_HARM
    assert [(r.finding, r.metric) for r in decision.reasons] == [
        (Finding.GUARD_VIOLATED, "avg_latency_ms")
    ]


def test_better_variant_is_not_shipped_while_it_misses_a_guard() -> None:
    """b is better on success rate, but its point estimate (0.9495) misses the 0.95 guard
    without violating it confidently: keep running."""
    decision = decide(
        [variant("control", 2_000, 1_800, 80.0), variant("b", 2_000, 1_899, 80.0)],
        METRICS,
        control="control",
    )
    assert decision.verdict is Verdict.KEEP_RUNNING
    assert Finding.GUARD_UNMET in {r.finding for r in decision.reasons}


def test_no_difference_when_powered_and_the_sequence_excludes_the_mde() -> None:
    decision = decide(
        [variant("control", 100_000, 96_000, 80.0), variant("b", 100_000, 96_050, 80.0)],
        METRICS,
        control="control",
    )
    assert decision.verdict is Verdict.NO_DIFFERENCE and decision.variant is None
    primary = next(r for r in decision.results if r.primary)
    assert primary.power is not None and primary.power.reached
    cs = primary.comparison.confidence_sequence if primary.comparison else None
    assert cs is not None and cs.low > -0.01 and cs.high < 0.01


def test_keep_running_while_inconclusive() -> None:
    decision = decide(
        [variant("control", 2_000, 1_920, 80.0), variant("b", 2_000, 1_925, 80.0)],
        METRICS,
        control="control",
    )
    assert decision.verdict is Verdict.KEEP_RUNNING
    assert Finding.INCONCLUSIVE in {r.finding for r in decision.reasons}


def test_keep_running_without_data() -> None:
    decision = decide(
        [variant("control", 0, 0, 0.0), variant("b", 0, 0, 0.0)], METRICS, control="control"
    )
    assert decision.verdict is Verdict.KEEP_RUNNING
    assert {r.finding for r in decision.reasons} == {Finding.INSUFFICIENT_DATA}


def test_sample_ratio_mismatch_blocks_shipping() -> None:
    data = [
        variant("control", 20_000, 19_000, 80.0, assigned=49_000),
        variant("b", 20_000, 19_400, 80.2, assigned=51_000),
    ]
    decision = decide(data, METRICS, control="control", weights={"control": 0.5, "b": 0.5})
    assert decision.verdict is Verdict.KEEP_RUNNING
    assert decision.srm is not None and decision.srm.mismatch
    assert decision.reasons[0].finding is Finding.SAMPLE_RATIO_MISMATCH


def test_unknown_control_or_missing_metric_raise() -> None:
    data = [variant("control", 10, 9, 80.0), variant("b", 10, 9, 80.0)]
    with pytest.raises(InvalidInputError):
        decide(data, METRICS, control="a")
    with pytest.raises(InvalidInputError):
        decide(data, (*METRICS, SuccessMetric("ctr", MetricKind.RATE)), control="control")


def test_lower_is_better_primary_ships_the_faster_variant_and_stops_a_slower_one() -> None:
    latency_first = (
        SuccessMetric.parse("avg_latency_ms <= 100 weight 1.0 mde 2"),
        SuccessMetric.parse("success_rate >= 0.9 weight 0.5"),
    )
    faster = decide(
        [variant("control", 5_000, 4_800, 80.0), variant("b", 5_000, 4_800, 70.0)],
        latency_first,
        control="control",
    )
    assert (faster.verdict, faster.variant) == (Verdict.SHIP, "b")
    assert faster.scores["b"] == pytest.approx(1.0 / 1.5)
    slower = decide(
        [variant("control", 5_000, 4_800, 80.0), variant("b", 5_000, 4_800, 90.0)],
        latency_first,
        control="control",
    )
    assert (slower.verdict, slower.variant) == (Verdict.STOP_HARM, "b")
    assert slower.reasons[0].finding is Finding.WORSE and slower.reasons[0].effect == 10.0


def test_harm_margin_tolerates_a_small_significant_degradation() -> None:
    tolerant = (
        SuccessMetric("success_rate", MetricKind.RATE, mde=0.01, harm_margin=0.02),
        SuccessMetric("avg_latency_ms", MetricKind.MEAN, Direction.LOWER_IS_BETTER, weight=0.5),
    )
    data = [variant("control", 50_000, 48_000, 80.0), variant("b", 50_000, 47_500, 80.0)]
    assert decide(data, tolerant, control="control").verdict is Verdict.KEEP_RUNNING
    assert decide(data, METRICS, control="control").verdict is Verdict.STOP_HARM


def test_treatments_are_compared_at_a_bonferroni_level() -> None:
    data = [variant(name, 1_000, 950, 80.0) for name in ("control", "b", "c", "d")]
    decision = decide(data, METRICS, control="control", alpha=0.06)
    levels = [r.comparison.alpha for r in decision.results if r.comparison is not None]
    assert len(levels) == 6 and levels == pytest.approx([0.02] * 6)
