r"""Canary policy as pure functions: the verdict of one step, and the state machine around it.

**Checks** (built from the store's per-variant aggregates, judged by
:func:`sibyl.experiments.judge_canary`, i.e. always-valid confidence sequences):

* ``error_rate`` — errors / requests, lower is better, absolute margin. Its per-request variance
  is the smoothed ``p̃(1 − p̃)`` with ``p̃ = (errors + 1)/(n + 2)`` (the estimate itself stays
  ``errors/n``): the plug-in ``p̂(1 − p̂)`` is 0 when an arm has no errors — or only errors — and
  a test with zero variance can never conclude, so a candidate failing every request would wait
  forever.
* ``latency_ms`` — mean latency with its sample variance, lower is better, margin relative to the
  baseline's mean.
* ``quality`` (optional) — the feedback ``success_rate`` (smoothed like the error rate) or
  ``value_mean``, higher is better, absolute margin.

A check counts once each arm has :data:`ROLLBACK_FLOOR` requests (or ``min_requests`` when
smaller; ``quality_min_feedback`` feedback items for the quality check) — the normal
approximation behind the test needs a few dozen observations. The step's verdict is
**rollback** as soon as a counted check is confidently worse than its margin, **promote** when
every configured check counts and is confidently within its margin and both arms have
``min_requests``, else **wait**.

**State machine** (:func:`decide`): rollback at once on a rollback verdict; when the dwell is
over and the verdict is promote, the step passes (``advance`` to the next step, ``promote`` after
the last); past ``dwell + max_wait`` without either, ``on_timeout`` decides. Phases:
``running → promoting → promoted`` and ``running → rolled_back``; states are JSON in the
experiment's ``routing["canary_state"]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from sibyl.experiments import CanaryAction, CanaryCheck, Direction, Moments, judge_canary
from sibyl.service._canary_config import CanaryConfig, OnTimeout, QualityMetric
from sibyl.store import VariantAggregate

STATE_KEY = "canary_state"
"""Key of the canary state in the experiment's ``routing`` JSON."""
ROLLBACK_FLOOR = 30
"""Requests per arm before a check may count (``min_requests`` when smaller, never below 2)."""


class Phase(StrEnum):
    RUNNING = "running"
    PROMOTING = "promoting"
    """The production alias is being moved to the candidate (retried until it is)."""
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"


class Move(StrEnum):
    """What the controller does after one look at a running step."""

    WAIT = "wait"
    ADVANCE = "advance"
    PROMOTE = "promote"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class StepVerdict:
    """The verdict of one look at a step, with per-check numbers (JSON-ready)."""

    action: CanaryAction
    reason: str
    n_baseline: int
    n_candidate: int
    checks: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "reason": self.reason,
            "n_baseline": self.n_baseline,
            "n_candidate": self.n_candidate,
            "checks": [dict(c) for c in self.checks],
        }


def judge_step(cfg: CanaryConfig, base: VariantAggregate, cand: VariantAggregate) -> StepVerdict:
    """The verdict on ``cand`` against ``base`` (module docstring)."""
    floor = max(2, min(cfg.min_requests, ROLLBACK_FLOOR))
    built = [
        _error_check(cfg, base, cand, floor),
        _latency_check(cfg, base, cand, floor),
        _quality_check(cfg, base, cand),
    ]
    ready = [c for c in built if isinstance(c, CanaryCheck)]
    pending = [c for c in built if isinstance(c, str)]
    rows: list[dict[str, Any]] = [
        {"name": p.split(":")[0], "action": "wait", "note": p} for p in pending
    ]
    counts = (base.n, cand.n)
    if not ready:
        return StepVerdict(CanaryAction.WAIT, "; ".join(pending), *counts, tuple(rows))
    verdict = judge_canary(ready, alpha=cfg.alpha)
    rows = [_row(check, result) for check, result in zip(ready, verdict.checks, strict=True)] + rows
    if verdict.action is CanaryAction.ROLLBACK:
        worst = next(r for r in rows if r["action"] == "rollback")
        return StepVerdict(CanaryAction.ROLLBACK, _worse(worst), *counts, tuple(rows))
    short = min(counts) < cfg.min_requests
    if verdict.action is CanaryAction.PROMOTE and not pending and not short:
        return StepVerdict(
            CanaryAction.PROMOTE, "every check is within its margin", *counts, tuple(rows)
        )
    why = pending + [
        f"{r['name']}: undecided" for r in rows if r["action"] == "wait" and "note" not in r
    ]
    if short:
        why.append(
            f"needs {cfg.min_requests} requests per arm (baseline {base.n}, candidate {cand.n})"
        )
    return StepVerdict(CanaryAction.WAIT, "; ".join(why), *counts, tuple(rows))


def _error_check(
    cfg: CanaryConfig, base: VariantAggregate, cand: VariantAggregate, floor: int
) -> CanaryCheck | str | None:
    if cfg.error_rate_margin is None:
        return None
    if min(base.n, cand.n) < floor:
        return f"error_rate: needs {floor} requests per arm"
    return CanaryCheck(
        "error_rate", _rate(base.n, base.errors), _rate(cand.n, cand.errors), cfg.error_rate_margin
    )


def _latency_check(
    cfg: CanaryConfig, base: VariantAggregate, cand: VariantAggregate, floor: int
) -> CanaryCheck | str | None:
    if cfg.latency_margin is None:
        return None
    if min(base.n, cand.n) < floor:
        return f"latency_ms: needs {floor} requests per arm"
    return CanaryCheck(
        "latency_ms", _latency(base), _latency(cand), cfg.latency_margin, relative=True
    )


def _quality_check(
    cfg: CanaryConfig, base: VariantAggregate, cand: VariantAggregate
) -> CanaryCheck | str | None:
    if cfg.quality_metric is None:
        return None
    need = max(2, cfg.quality_min_feedback)
    if min(base.value_n, cand.value_n) < need:
        return (
            f"quality: needs {need} feedback values per arm "
            f"(baseline {base.value_n}, candidate {cand.value_n})"
        )
    pick = _success if cfg.quality_metric is QualityMetric.SUCCESS_RATE else _values
    return CanaryCheck(
        "quality", pick(base), pick(cand), cfg.quality_margin, Direction.HIGHER_IS_BETTER
    )


def _rate(n: int, hits: float) -> Moments:
    """A rate as moments: estimate ``hits/n``, variance smoothed as ``p̃(1 − p̃)``."""
    smoothed = (hits + 1.0) / (n + 2.0)
    return Moments(n, hits / n, smoothed * (1.0 - smoothed))


def _latency(agg: VariantAggregate) -> Moments:
    return Moments(agg.n, agg.latency_mean_ms or 0.0, agg.latency_var_ms2 or 0.0)


def _success(agg: VariantAggregate) -> Moments:
    return _rate(agg.value_n, min(max(agg.value_sum, 0.0), float(agg.value_n)))


def _values(agg: VariantAggregate) -> Moments:
    return Moments.from_sums(agg.value_n, agg.value_sum, agg.value_sumsq)


def _row(check: CanaryCheck, result: Any) -> dict[str, Any]:
    interval = result.interval
    return {
        "name": check.name,
        "action": result.action.value,
        "baseline": _finite(check.baseline.mean),
        "candidate": _finite(check.candidate.mean),
        "n_baseline": check.baseline.n,
        "n_candidate": check.candidate.n,
        "worse_by": _finite(result.worse_by),
        "margin": _finite(result.margin),
        "interval": None if interval is None else [_finite(interval.low), _finite(interval.high)],
        "p_worse_than_margin": _finite(result.p_worse_than_margin),
    }


def _worse(row: Mapping[str, Any]) -> str:
    low, high = row["interval"] or (None, None)
    return (
        f"{row['name']} is worse than the baseline by {_fmt(row['worse_by'])} (always-valid "
        f"interval [{_fmt(low)}, {_fmt(high)}]), more than the margin {_fmt(row['margin'])}"
    )


def _fmt(x: float | None) -> str:
    return "?" if x is None else f"{x:.4g}"


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


# ---- state ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CanaryState:
    """Where a canary is: phase, step, when it and the step began, and the decisions so far."""

    phase: Phase
    step: int
    started_at: datetime
    step_started_at: datetime
    history: tuple[dict[str, Any], ...] = ()
    reason: str | None = None
    finished_at: datetime | None = None

    @classmethod
    def begin(cls, started_at: datetime) -> CanaryState:
        return cls(Phase.RUNNING, 0, started_at, started_at)

    @classmethod
    def from_routing(cls, routing: Mapping[str, Any]) -> CanaryState | None:
        """The state stored in ``routing`` (``None`` before the controller first saw it)."""
        raw = routing.get(STATE_KEY)
        if not isinstance(raw, Mapping):
            return None
        finished = raw.get("finished_at")
        return cls(
            Phase(raw["phase"]),
            int(raw["step"]),
            datetime.fromisoformat(raw["started_at"]),
            datetime.fromisoformat(raw["step_started_at"]),
            tuple(raw.get("history", ())),
            raw.get("reason"),
            datetime.fromisoformat(finished) if finished else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase.value,
            "step": self.step,
            "started_at": self.started_at.isoformat(),
            "step_started_at": self.step_started_at.isoformat(),
            "history": [dict(h) for h in self.history],
            "reason": self.reason,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }

    def routing(self, routing: Mapping[str, Any]) -> dict[str, Any]:
        """``routing`` with this state in it."""
        return {**routing, STATE_KEY: self.to_json()}


@dataclass(frozen=True, slots=True)
class Decision:
    """A move with its reason and the verdict it rests on (``None``: manual)."""

    move: Move
    reason: str
    verdict: StepVerdict | None = field(default=None)


def decide(cfg: CanaryConfig, state: CanaryState, verdict: StepVerdict, now: datetime) -> Decision:
    """The move of a running step after one look (module docstring)."""
    elapsed = (now - state.step_started_at).total_seconds()
    passed = Move.PROMOTE if cfg.is_last(state.step) else Move.ADVANCE
    if verdict.action is CanaryAction.ROLLBACK:
        return Decision(Move.ROLLBACK, verdict.reason, verdict)
    if elapsed >= cfg.dwell_s and verdict.action is CanaryAction.PROMOTE:
        return Decision(
            passed, f"step {cfg.steps[state.step]:g} % passed: {verdict.reason}", verdict
        )
    if elapsed >= cfg.dwell_s + cfg.max_wait_s:
        what = (
            f"no verdict {elapsed:.0f} s into step {cfg.steps[state.step]:g} % ({verdict.reason})"
        )
        if cfg.on_timeout is OnTimeout.ROLLBACK:
            return Decision(Move.ROLLBACK, f"{what}; on_timeout is rollback", verdict)
        return Decision(passed, f"{what}; on_timeout is promote", verdict)
    return Decision(Move.WAIT, verdict.reason, verdict)


def apply(cfg: CanaryConfig, state: CanaryState, decision: Decision, now: datetime) -> CanaryState:
    """The state after ``decision`` (a WAIT leaves it unchanged)."""
    if decision.move is Move.WAIT:
        return state
    entry = {
        "at": now.isoformat(),
        "step": state.step,
        "percent": cfg.steps[state.step],
        "action": decision.move.value,
        "reason": decision.reason,
        "verdict": decision.verdict.to_json() if decision.verdict else None,
    }
    history = (*state.history, entry)
    if decision.move is Move.ADVANCE:
        return replace(state, step=state.step + 1, step_started_at=now, history=history)
    if decision.move is Move.PROMOTE:
        return replace(state, phase=Phase.PROMOTING, history=history, reason=decision.reason)
    return replace(
        state, phase=Phase.ROLLED_BACK, history=history, reason=decision.reason, finished_at=now
    )


def promoted(state: CanaryState, now: datetime) -> CanaryState:
    """The state once the production alias points at the candidate."""
    return replace(state, phase=Phase.PROMOTED, finished_at=now)
