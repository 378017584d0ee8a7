"""Canary judgement: promote / rollback / wait, anytime-valid."""

from __future__ import annotations

import json

import numpy as np

from sibyl.experiments import (
    CanaryAction,
    CanaryCheck,
    Direction,
    Moments,
    Proportion,
    judge_canary,
)


def checks(
    base_err: int, cand_err: int, n_base: int, n_cand: int, cand_latency: float = 50.0
) -> list[CanaryCheck]:
    return [
        CanaryCheck(
            "error_rate", Proportion(n_base, base_err), Proportion(n_cand, cand_err), margin=0.005
        ),
        CanaryCheck(
            "latency_ms",
            Moments(n_base, 50.0, 100.0),
            Moments(n_cand, cand_latency, 100.0),
            margin=0.10,
            relative=True,
        ),
    ]


def test_rollback_when_error_rate_is_confidently_worse_by_more_than_the_margin() -> None:
    verdict = judge_canary(checks(500, 150, 50_000, 5_000))  # 1 % vs 3 %
    assert verdict.action is CanaryAction.ROLLBACK
    err = verdict.checks[0]
    assert err.action is CanaryAction.ROLLBACK and err.interval is not None
    assert err.interval.low > 0.005 and err.p_worse_than_margin < 0.05
    assert json.loads(json.dumps(verdict.to_dict(), allow_nan=False))["action"] == "rollback"


def test_rollback_when_latency_is_worse_by_more_than_ten_percent() -> None:
    verdict = judge_canary(checks(500, 50, 50_000, 5_000, cand_latency=60.0))
    assert verdict.action is CanaryAction.ROLLBACK
    assert [c.action for c in verdict.checks][1] is CanaryAction.ROLLBACK


def test_promote_when_every_check_is_confidently_within_its_margin() -> None:
    verdict = judge_canary(checks(500, 500, 50_000, 50_000))
    assert verdict.action is CanaryAction.PROMOTE
    assert all(c.interval is not None and c.interval.high < c.margin for c in verdict.checks)


def test_wait_while_the_data_cannot_tell() -> None:
    assert judge_canary(checks(5, 6, 500, 500)).action is CanaryAction.WAIT


def test_quality_metric_where_higher_is_better() -> None:
    accuracy = CanaryCheck(
        "accuracy",
        Proportion(20_000, 18_000),
        Proportion(20_000, 17_000),
        margin=0.01,
        direction=Direction.HIGHER_IS_BETTER,
    )
    result = judge_canary([accuracy])
    assert result.action is CanaryAction.ROLLBACK and result.checks[0].worse_by > 0


def test_identical_canary_is_rarely_rolled_back_under_repeated_looks() -> None:
    """500 identical canaries (1 % errors), judged after each of 10 batches of 2,000 requests
    per arm with margin 0: a rollback at any look is a false alarm and must stay ≤ 5 % (a 10 %
    rate would need to come out 3.7 standard errors low to pass). Measured (seed 21): 1/500."""
    rng = np.random.default_rng(21)
    base = rng.binomial(2000, 0.01, (500, 10)).cumsum(axis=1)
    cand = rng.binomial(2000, 0.01, (500, 10)).cumsum(axis=1)
    false_rollbacks = 0
    for b_row, c_row in zip(base, cand, strict=True):
        false_rollbacks += any(
            judge_canary(
                [
                    CanaryCheck(
                        "err",
                        Proportion(2000 * (k + 1), int(b)),
                        Proportion(2000 * (k + 1), int(c)),
                    )
                ]
            ).action
            is CanaryAction.ROLLBACK
            for k, (b, c) in enumerate(zip(b_row, c_row, strict=True))
        )
    assert false_rollbacks / 500 <= 0.05
