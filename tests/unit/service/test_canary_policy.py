"""Canary config parsing / validation and the pure policy: a step's verdict and the moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sibyl.errors import InvalidInputError
from sibyl.experiments import CanaryAction
from sibyl.service import NewExperiment
from sibyl.service._canary_config import CanaryConfig, parse_duration, validate_canary
from sibyl.service._canary_policy import (
    CanaryState,
    Move,
    Phase,
    StepVerdict,
    apply,
    decide,
    judge_step,
)
from sibyl.store import ExperimentKind, Variant, VariantAggregate

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def field_of(raw: dict[str, Any]) -> str | None:
    with pytest.raises(InvalidInputError) as info:
        CanaryConfig.parse(raw, prefix="config.")
    return info.value.field


# ---- config ------------------------------------------------------------------------------


def test_durations() -> None:
    assert parse_duration(90, "dwell") == 90.0
    assert parse_duration("1.5m", "dwell") == 90.0
    assert parse_duration("500ms", "dwell") == 0.5
    assert parse_duration("2h", "dwell") == 7200.0
    assert parse_duration("30", "dwell") == 30.0
    for bad in ("ten minutes", "-5s", -1, True, None, "5d"):
        with pytest.raises(InvalidInputError) as info:
            parse_duration(bad, "dwell")
        assert info.value.field == "dwell"


def test_defaults_and_normalised_round_trip() -> None:
    cfg = CanaryConfig.parse({"dwell": "5m"})
    assert cfg.steps == (10.0, 50.0, 100.0) and cfg.dwell_s == cfg.max_wait_s == 300.0
    assert cfg.on_timeout == "rollback" and cfg.error_rate_margin == 0.01
    assert cfg.latency_margin == 0.2 and cfg.quality_metric is None
    stored = cfg.to_json()
    assert CanaryConfig.from_routing({"canary": stored}) == cfg
    off = CanaryConfig.parse({"latency_margin": None, "quality_metric": "success_rate"})
    assert off.latency_margin is None and off.quality
    assert off.weights(0, "b", "c") == {"b": 90.0, "c": 10.0}


def test_bad_configs_name_their_field() -> None:
    assert field_of({"steps": [10, 50]}) == "config.steps"  # does not end at 100
    assert field_of({"steps": [50, 10, 100]}) == "config.steps"  # not increasing
    assert field_of({"steps": [100]}) == "config.steps"  # the baseline never serves beside
    assert field_of({"steps": [0, 100]}) == "config.steps"
    assert field_of({"steps": "10,100"}) == "config.steps"
    assert field_of({"dwell": "soon"}) == "config.dwell"
    assert field_of({"on_timeout": "panic"}) == "config.on_timeout"
    assert field_of({"alpha": 1.0}) == "config.alpha"
    assert field_of({"min_requests": 0}) == "config.min_requests"
    assert field_of({"latency_margin": -0.1}) == "config.latency_margin"
    assert field_of({"quality_metric": "nps"}) == "config.quality_metric"
    assert field_of({"step": [10, 100]}) == "config.step"  # unknown key
    assert field_of({"error_rate_margin": None, "latency_margin": None}) == (
        "config.error_rate_margin"
    )  # no check left


def spec(*variants: Variant, **config: Any) -> NewExperiment:
    return NewExperiment(
        "c", "churn", variants, kind=ExperimentKind.CANARY, config={"steps": [10, 100], **config}
    )


def test_the_validator_checks_the_two_pinned_variants() -> None:
    base = Variant("baseline", "", "3", weight=90, is_control=True)
    cand = Variant("candidate", "", "4", weight=10)
    routing = validate_canary(spec(base, cand))
    assert routing["canary"]["steps"] == [10.0, 100.0]
    assert validate_canary(spec(Variant("b", "churn", "3", weight=9, is_control=True),
                                Variant("c", "churn", "4", weight=1)))  # fmt: skip
    bad = [
        spec(base, cand, Variant("third", "", "5", weight=0)),
        spec(base, Variant("candidate", "", alias="staging", weight=10)),
        spec(base, Variant("candidate", "", "3", weight=10)),
        spec(base, Variant("candidate", "other-model", "4", weight=10)),
        spec(base, Variant("candidate", "", "4", weight=50)),  # 50/50, the first step is 10 %
    ]
    for s in bad:
        with pytest.raises(InvalidInputError) as info:
            validate_canary(s)
        assert info.value.field == "variants"


# ---- the verdict of one step ----------------------------------------------------------------


def agg(name: str, n: int, errors: int = 0, mean: float = 50.0, var: float = 100.0,
        **kw: Any) -> VariantAggregate:  # fmt: skip
    return VariantAggregate(name, name == "baseline", 50.0, n=n, errors=errors,
                            latency_mean_ms=mean, latency_var_ms2=var, **kw)  # fmt: skip


CFG = CanaryConfig.parse({"min_requests": 100, "error_rate_margin": 0.02, "latency_margin": 0.2})


def test_a_candidate_failing_every_request_is_rolled_back_although_no_arm_varies() -> None:
    """0 % vs 100 % errors: the plug-in variance is 0 on both arms; the smoothed one is not."""
    verdict = judge_step(CFG, agg("baseline", 300), agg("candidate", 30, errors=30))
    assert verdict.action is CanaryAction.ROLLBACK
    assert verdict.reason.startswith("error_rate is worse than the baseline by 1")
    error = verdict.checks[0]
    assert error["name"] == "error_rate" and error["interval"][0] > 0.02


def test_no_check_counts_below_the_floor_and_a_pass_needs_min_requests() -> None:
    few = judge_step(CFG, agg("baseline", 300), agg("candidate", 29, errors=29))
    assert few.action is CanaryAction.WAIT and "needs 30 requests per arm" in few.reason
    # within every margin, but fewer than min_requests per arm: wait
    short = judge_step(CFG, agg("baseline", 5000), agg("candidate", 90))
    assert short.action is CanaryAction.WAIT and "needs 100 requests per arm" in short.reason
    ok = judge_step(CFG, agg("baseline", 5000), agg("candidate", 1000))
    assert ok.action is CanaryAction.PROMOTE
    assert all(c["action"] == "promote" for c in ok.checks)
    assert ok.to_json()["checks"][1]["name"] == "latency_ms"


def test_latency_margin_is_relative_to_the_baseline() -> None:
    slow = judge_step(CFG, agg("baseline", 2000), agg("candidate", 300, mean=75.0))
    assert slow.action is CanaryAction.ROLLBACK and "latency_ms" in slow.reason
    latency = slow.checks[1]
    assert latency["margin"] == pytest.approx(10.0) and latency["worse_by"] == pytest.approx(25)


def test_the_quality_check_waits_for_feedback_then_judges_success_rates() -> None:
    cfg = CanaryConfig.parse({"min_requests": 50, "quality_metric": "success_rate",
                              "quality_margin": 0.05, "quality_min_feedback": 40})  # fmt: skip

    def fb(name: str, n: int, successes: int) -> VariantAggregate:
        return agg(name, 2000, value_n=n, value_sum=float(successes),
                   value_sumsq=float(successes))  # fmt: skip

    waiting = judge_step(cfg, fb("baseline", 400, 360), fb("candidate", 39, 39))
    assert waiting.action is CanaryAction.WAIT and "feedback" in waiting.reason
    worse = judge_step(cfg, fb("baseline", 2000, 1800), fb("candidate", 400, 200))
    assert worse.action is CanaryAction.ROLLBACK and worse.reason.startswith("quality")
    same = judge_step(cfg, fb("baseline", 2000, 2000), fb("candidate", 1500, 1500))
    assert same.action is CanaryAction.PROMOTE  # all successes: the smoothed variance decides


# ---- moves ----------------------------------------------------------------------------------


def verdict(action: CanaryAction) -> StepVerdict:
    return StepVerdict(action, f"verdict {action}", 1000, 100)


def test_moves_follow_the_dwell_and_the_timeout() -> None:
    cfg = CanaryConfig.parse({"steps": [10, 100], "dwell": 60, "max_wait": 60})
    state = CanaryState.begin(T0)
    at = lambda s: T0 + timedelta(seconds=s)  # noqa: E731
    assert decide(cfg, state, verdict(CanaryAction.ROLLBACK), at(1)).move is Move.ROLLBACK
    assert decide(cfg, state, verdict(CanaryAction.PROMOTE), at(59)).move is Move.WAIT
    assert decide(cfg, state, verdict(CanaryAction.PROMOTE), at(60)).move is Move.ADVANCE
    assert decide(cfg, state, verdict(CanaryAction.WAIT), at(119)).move is Move.WAIT
    timeout = decide(cfg, state, verdict(CanaryAction.WAIT), at(120))
    assert timeout.move is Move.ROLLBACK and "on_timeout is rollback" in timeout.reason
    lenient = CanaryConfig.parse({"steps": [10, 100], "dwell": 60, "on_timeout": "promote"})
    assert decide(lenient, state, verdict(CanaryAction.WAIT), at(120)).move is Move.ADVANCE

    advanced = apply(cfg, state, decide(cfg, state, verdict(CanaryAction.PROMOTE), at(60)), at(60))
    assert (advanced.step, advanced.step_started_at, advanced.phase) == (1, at(60), Phase.RUNNING)
    last = decide(cfg, advanced, verdict(CanaryAction.PROMOTE), at(130))
    assert last.move is Move.PROMOTE
    promoting = apply(cfg, advanced, last, at(130))
    assert promoting.phase is Phase.PROMOTING
    assert [h["action"] for h in promoting.history] == ["advance", "promote"]
    assert promoting.history[0]["verdict"]["action"] == "promote"
    assert CanaryState.from_routing(promoting.routing({"x": 1})) == promoting
