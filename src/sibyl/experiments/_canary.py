r"""Canary judgement: is the candidate worse than the baseline by more than a margin?

For each check (error rate, latency, a quality metric) let ``W = s·(candidate − baseline)`` be
"how much worse" the candidate is (``s = +1`` when lower is better, ``−1`` when higher is better)
and ``[W_lo, W_hi]`` its always-valid confidence sequence (normal-mixture mSPRT, see
:mod:`sibyl.experiments._sequential`, with ``τ`` = the margin, or the default when the margin
is 0). Then

* **rollback** as soon as some check has ``W_lo > margin`` (confidently worse by more than the
  margin);
* **promote** once every check has ``W_hi < margin`` (confidently not worse by more than the
  margin — a non-inferiority test per check; requiring all of them is an intersection–union test,
  so no multiplicity correction is needed for promotion);
* otherwise **wait** (more traffic or a longer dwell).

Each check runs at level ``α``; with ``m`` checks a false rollback has probability ≤ ``m·α``
(the safe direction). Because the interval is always-valid, the canary controller may evaluate
this after every request batch. ``p_worse_than_margin`` is the always-valid p-value ``1/Λ`` of
``H₀: W = margin``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from sibyl.errors import InvalidInputError
from sibyl.experiments._compare import compare
from sibyl.experiments._metrics import Direction
from sibyl.experiments._sequential import Interval, always_valid_p_value
from sibyl.experiments._stats import Aggregate


class CanaryAction(StrEnum):
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    WAIT = "wait"


@dataclass(frozen=True)
class CanaryCheck:
    """One guarded metric: baseline and candidate aggregates and the tolerated degradation.

    ``margin`` is absolute in the metric's units, or a fraction of the baseline's value when
    ``relative`` (e.g. ``0.10`` = 10 % slower latency tolerated).
    """

    name: str
    baseline: Aggregate
    candidate: Aggregate
    margin: float = 0.0
    direction: Direction = Direction.LOWER_IS_BETTER
    relative: bool = False

    def margin_abs(self) -> float:
        return self.margin * abs(self.baseline.mean) if self.relative else self.margin


@dataclass(frozen=True)
class CanaryCheckResult:
    """``worse_by`` (> 0: candidate worse) with its always-valid interval and the action it asks."""

    name: str
    worse_by: float
    interval: Interval | None
    margin: float
    p_worse_than_margin: float
    action: CanaryAction


@dataclass(frozen=True)
class CanaryVerdict:
    action: CanaryAction
    checks: tuple[CanaryCheckResult, ...]
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_canary(checks: Sequence[CanaryCheck], *, alpha: float = 0.05) -> CanaryVerdict:
    """Promote, roll back or wait (module docstring). Raises ``InvalidInputError`` when there are
    no checks, a margin is negative, or an arm is too small to compare (see ``compare``)."""
    if not checks:
        raise InvalidInputError("a canary needs at least one check", field="checks")
    results = tuple(_judge(c, alpha) for c in checks)
    if any(r.action is CanaryAction.ROLLBACK for r in results):
        action = CanaryAction.ROLLBACK
    elif all(r.action is CanaryAction.PROMOTE for r in results):
        action = CanaryAction.PROMOTE
    else:
        action = CanaryAction.WAIT
    return CanaryVerdict(action, results, alpha)


def _judge(check: CanaryCheck, alpha: float) -> CanaryCheckResult:
    margin = check.margin_abs()
    if margin < 0:
        raise InvalidInputError(f"canary check {check.name!r}: margin must be ≥ 0", field="margin")
    comp = compare(check.baseline, check.candidate, alpha=alpha, mde=margin or None)
    sign = -check.direction.sign
    worse = sign * comp.difference
    cs = comp.confidence_sequence
    interval = None
    action = CanaryAction.WAIT
    if cs is not None:
        lo, hi = sorted((sign * cs.low, sign * cs.high))
        interval = Interval(lo, hi, cs.level)
        if lo > margin:
            action = CanaryAction.ROLLBACK
        elif hi < margin:
            action = CanaryAction.PROMOTE
    se2 = check.baseline.variance / check.baseline.n + check.candidate.variance / check.candidate.n
    p = always_valid_p_value(worse - margin, se2, comp.tau)
    return CanaryCheckResult(check.name, worse, interval, margin, p, action)
