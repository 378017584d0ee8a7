"""Shadow statistics as pure functions: row agreement, its interval, and the gate's judgement.

* :func:`agreeing_rows` compares a candidate's answer with the primary's row by row: the same
  label (``label``), or every value within ``tolerance`` (``tolerance``); ``auto`` picks
  ``label`` for classifiers and ``tolerance`` for everything else.
* :func:`agreement_interval` is a Wilson score interval on the row agreement rate. Rows of one
  request are not independent (a bad feature breaks all of them), so the sample size is the
  number of rows divided by the design effect — the clustered (per-request) variance of the
  ratio estimator over the binomial one — and the number of requests when every row agreed (or
  none did) and no variance can be measured.
* :func:`judge` checks one candidate's aggregate against :class:`PromotionGateSettings`.

No I/O, no state: safe from any thread.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from statistics import NormalDist
from typing import Any

import numpy as np

from sibyl.runtime.types import Prediction, Task
from sibyl.settings import PromotionGateSettings
from sibyl.store import ShadowAggregate

Array = np.ndarray[Any, Any]


class AgreementRule(StrEnum):
    """When a candidate's row agrees with the primary's."""

    AUTO = "auto"
    """``label`` for classifiers, ``tolerance`` for regressors and other models."""
    LABEL = "label"
    """The same predicted value (label)."""
    TOLERANCE = "tolerance"
    """Every value of the row within ``tolerance`` (absolute) of the primary's; values that are
    not numbers must be equal."""


def resolve_rule(rule: AgreementRule, task: Task) -> AgreementRule:
    """The concrete rule (``label`` or ``tolerance``) for a primary of ``task``."""
    if rule is not AgreementRule.AUTO:
        return rule
    return AgreementRule.LABEL if task is Task.CLASSIFIER else AgreementRule.TOLERANCE


def agreeing_rows(
    primary: Prediction, candidate: Prediction, rule: AgreementRule, tolerance: float, task: Task
) -> int:
    """How many rows of ``candidate`` agree with ``primary`` under ``rule``.

    Raises ``ValueError`` when the two answers do not have the same number of rows (a broken
    candidate: counted as its error, never as a disagreement).
    """
    a, b = primary.predictions, candidate.predictions
    if len(a) != len(b):
        raise ValueError(f"the candidate answered {len(b)} rows for {len(a)}")
    if resolve_rule(rule, task) is AgreementRule.LABEL:
        return _equal_rows(a, b)
    return _close_rows(a, b, tolerance)


def _equal_rows(a: Array, b: Array) -> int:
    if a.dtype != object and b.dtype != object and a.shape == b.shape:
        same = np.asarray(a == b)
        if same.shape == a.shape:  # elementwise (mismatched kinds compare to one False)
            return int(same.reshape(len(a), -1).all(axis=1).sum())
    return sum(_same(x, y) for x, y in zip(a, b, strict=True))


def _close_rows(a: Array, b: Array, tolerance: float) -> int:
    fa, fb = _floats(a), _floats(b)
    if fa is None or fb is None or fa.shape != fb.shape:  # ragged or not numbers: row by row
        return sum(_close(x, y, tolerance) for x, y in zip(a, b, strict=True))
    ok = (np.abs(fa - fb) <= tolerance) | (np.isnan(fa) & np.isnan(fb))
    return int(ok.reshape(len(fa), -1).all(axis=1).sum())


def _close(x: Any, y: Any, tolerance: float) -> bool:
    fx, fy = _floats(x), _floats(y)
    if fx is None or fy is None:
        return _same(x, y)
    if fx.shape != fy.shape:
        return False
    return bool(((np.abs(fx - fy) <= tolerance) | (np.isnan(fx) & np.isnan(fy))).all())


def _floats(values: Any) -> Array | None:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _same(x: Any, y: Any) -> bool:
    try:
        result = x == y
        return bool(np.all(result)) if isinstance(result, np.ndarray) else bool(result)
    except Exception:  # values that cannot be compared do not agree
        return False


# ---- the agreement rate and its interval -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Agreement:
    """Row agreement rate with a Wilson interval at ``level`` over ``effective_n`` rows."""

    rate: float
    low: float
    high: float
    level: float
    effective_n: float


def agreement_interval(agg: ShadowAggregate, level: float = 0.95) -> Agreement | None:
    """The agreement rate of ``agg`` with its interval (see the module docstring); ``None``
    without compared rows."""
    if agg.rows == 0:
        return None
    p = agg.agreeing_rows / agg.rows
    n_eff = _effective_n(agg, p)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    denom = 1 + z * z / n_eff
    center = (p + z * z / (2 * n_eff)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n_eff + z * z / (4 * n_eff * n_eff))
    return Agreement(p, max(0.0, center - half), min(1.0, center + half), level, n_eff)


def _effective_n(agg: ShadowAggregate, p: float) -> float:
    m, n = agg.compared, agg.rows
    binomial = p * (1 - p) / n
    if m < 2 or binomial <= 0:
        return float(max(m, 1))
    # Σ (aᵢ − p·nᵢ)² from the stored sums: the ratio estimator's clustered variance, which is
    # the binomial one when every request has one row
    residual = max(0.0, agg.agreeing_sq - 2 * p * agg.cross + p * p * agg.rows_sq)
    clustered = residual / (n * n)
    return n / max(1.0, clustered / binomial)


# ---- the gate --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    """One gate criterion: what was required, what was measured, and whether it passed."""

    criterion: str
    required: float
    actual: float | None
    passed: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


def judge(criteria: PromotionGateSettings, agg: ShadowAggregate) -> list[Check]:
    """Every criterion that ``criteria`` sets, checked against one candidate's aggregate."""
    checks = [_at_least("min_requests", criteria.min_requests, agg.mirrored, "mirrored requests")]
    if criteria.min_agreement is not None:
        found = agreement_interval(agg)
        rate = None if found is None else found.rate
        checks.append(_at_least("min_agreement", criteria.min_agreement, rate, "agreement"))
    if criteria.max_error_rate is not None:
        rate = agg.errors / agg.mirrored if agg.mirrored else None
        checks.append(_at_most("max_error_rate", criteria.max_error_rate, rate, "error rate"))
    if criteria.max_latency_increase is not None:
        increase = latency_increase(agg)
        checks.append(
            _at_most(
                "max_latency_increase", criteria.max_latency_increase, increase, "p95 increase"
            )
        )
    return checks


def latency_increase(agg: ShadowAggregate) -> float | None:
    """Relative increase of the candidate's p95 latency over the primary's (``None`` without
    compared requests)."""
    primary, candidate = agg.latency.primary_p95, agg.latency.candidate_p95
    if primary is None or candidate is None:
        return None
    return (candidate - primary) / max(primary, 1e-3)  # a µs floor: finite, JSON-safe


def _at_least(name: str, required: float, actual: float | None, what: str) -> Check:
    if actual is None:
        return Check(name, required, None, False, f"{what}: nothing measured yet")
    passed = actual >= required
    sign = "≥" if passed else "<"
    return Check(name, required, actual, passed, f"{what} {_fmt(actual)} {sign} {_fmt(required)}")


def _at_most(name: str, required: float, actual: float | None, what: str) -> Check:
    if actual is None:
        return Check(name, required, None, False, f"{what}: nothing measured yet")
    passed = actual <= required
    sign = "≤" if passed else ">"
    return Check(name, required, actual, passed, f"{what} {_fmt(actual)} {sign} {_fmt(required)}")


def _fmt(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"
