r"""One comparison of a treatment with the control on one metric.

Fixed-horizon part (valid once, at a sample size fixed in advance):

* **rates** — difference ``p̂_T − p̂_C`` with the Wald interval
  ``± z_{1−α/2}·sqrt(p̂_T q̂_T/n_T + p̂_C q̂_C/n_C)``; two-sided p-value of the pooled two-proportion
  z-test ``z = (p̂_T − p̂_C) / sqrt(p̄ q̄ (1/n_T + 1/n_C))``, ``p̄`` the pooled rate.
* **means** — Welch's t: ``t = (x̄_T − x̄_C)/se``, ``se² = s²_T/n_T + s²_C/n_C``, degrees of
  freedom by Welch–Satterthwaite ``ν = se⁴ / Σ (s²/n)²/(n − 1)``; interval ``± t_{1−α/2,ν}·se``.
* **relative lift** ``L = m_T/m_C − 1`` with a **delta-method** interval (not Fieller):
  ``Var(L̂) ≈ Var(m̂_T)/m_C² + m_T²·Var(m̂_C)/m_C⁴``, normal quantile. Undefined (``None``) when
  the control mean is 0.

Always-valid part: the normal-mixture mSPRT on the difference with ``V = se²`` (unpooled) — see
:mod:`sibyl.experiments._sequential` for the formulas, the choice of ``τ`` and the caveats.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from sibyl.errors import InvalidInputError
from sibyl.experiments._dist import norm_ppf, norm_sf, t_ppf, t_sf
from sibyl.experiments._sequential import (
    Interval,
    always_valid_p_value,
    confidence_sequence,
    default_tau,
)
from sibyl.experiments._stats import Aggregate, MetricKind, Proportion


@dataclass(frozen=True)
class Comparison:
    """Treatment vs control on one metric (treatment − control; see the module docstring).

    ``p_value``/``difference_ci`` are fixed-horizon: read them once, at the planned sample size.
    ``always_valid_p_value``/``confidence_sequence`` may be read at every look. ``statistic`` is
    z (rates) or Welch t (means) with ``df`` degrees of freedom (``None`` for z).
    """

    kind: MetricKind
    n_control: int
    n_treatment: int
    control_mean: float
    treatment_mean: float
    difference: float
    difference_ci: Interval
    relative_lift: float | None
    relative_lift_ci: Interval | None
    test: str
    statistic: float
    df: float | None
    p_value: float
    always_valid_p_value: float
    confidence_sequence: Interval | None
    tau: float
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(
    control: Aggregate,
    treatment: Aggregate,
    *,
    alpha: float = 0.05,
    mde: float | None = None,
    relative_mde: bool = False,
    tau: float | None = None,
) -> Comparison:
    """Compare ``treatment`` with ``control`` (both :class:`Proportion` or both :class:`Moments`).

    ``mde`` (absolute, or a fraction of the control mean when ``relative_mde``) sets the mSPRT
    mixing scale ``τ`` unless ``tau`` is given explicitly. A relative MDE is converted with the
    observed control mean, which makes ``τ`` mildly data-dependent; pass an absolute ``mde`` (or
    ``tau``) when a baseline is known in advance. Raises ``InvalidInputError`` when the two kinds
    differ, ``alpha ∉ (0, 1)``, or an arm is too small (rates: n ≥ 1, means: n ≥ 2).
    """
    _validate(control, treatment, alpha)
    diff = treatment.mean - control.mean
    var_c, var_t = control.variance / control.n, treatment.variance / treatment.n
    se = math.sqrt(var_c + var_t)
    if isinstance(control, Proportion) and isinstance(treatment, Proportion):
        test, statistic, df, p_value, crit = _z_test(control, treatment, diff, alpha)
    else:
        test, statistic, df, p_value, crit = _welch(control, treatment, diff, alpha)
    mde_abs = None if mde is None else (mde * control.mean if relative_mde else mde)
    if tau is None:
        tau = default_tau(0.5 * (control.variance + treatment.variance), mde_abs)
    lift, lift_ci = _relative_lift(control.mean, treatment.mean, var_c, var_t, alpha)
    return Comparison(
        kind=control.kind,
        n_control=control.n,
        n_treatment=treatment.n,
        control_mean=control.mean,
        treatment_mean=treatment.mean,
        difference=diff,
        difference_ci=Interval(diff - crit * se, diff + crit * se, 1.0 - alpha),
        relative_lift=lift,
        relative_lift_ci=lift_ci,
        test=test,
        statistic=statistic,
        df=df,
        p_value=p_value,
        always_valid_p_value=always_valid_p_value(diff, se * se, tau),
        confidence_sequence=confidence_sequence(diff, se * se, tau, alpha),
        tau=tau,
        alpha=alpha,
    )


def _validate(control: Aggregate, treatment: Aggregate, alpha: float) -> None:
    if control.kind is not treatment.kind:
        raise InvalidInputError(
            f"cannot compare a {control.kind} metric with a {treatment.kind} metric",
            field="treatment",
        )
    if not 0 < alpha < 1:
        raise InvalidInputError(f"alpha must be in (0, 1), got {alpha}", field="alpha")
    need = 1 if control.kind is MetricKind.RATE else 2
    if min(control.n, treatment.n) < need:
        raise InvalidInputError(
            f"each arm needs n ≥ {need} for a {control.kind} comparison, got "
            f"n_control={control.n}, n_treatment={treatment.n}; wait for more traffic",
            field="n",
        )


def _two_sided(statistic: float, se: float, diff: float, sf: Any) -> float:
    if se == 0:
        return 1.0 if diff == 0 else 0.0
    return float(min(1.0, 2.0 * sf(abs(statistic))))


def _z_test(
    control: Proportion, treatment: Proportion, diff: float, alpha: float
) -> tuple[str, float, None, float, float]:
    pooled = (control.successes + treatment.successes) / (control.n + treatment.n)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / control.n + 1 / treatment.n))
    z = diff / se0 if se0 > 0 else 0.0
    p = _two_sided(z, se0, diff, norm_sf)
    return "z", z, None, p, norm_ppf(1 - alpha / 2)


def _welch(
    control: Aggregate, treatment: Aggregate, diff: float, alpha: float
) -> tuple[str, float, float, float, float]:
    a, b = control.variance / control.n, treatment.variance / treatment.n
    se = math.sqrt(a + b)
    denom = a * a / (control.n - 1) + b * b / (treatment.n - 1)
    df = (a + b) ** 2 / denom if denom > 0 else float(control.n + treatment.n - 2)
    t = diff / se if se > 0 else 0.0
    p = _two_sided(t, se, diff, lambda x: t_sf(x, df))
    return "welch_t", t, df, p, t_ppf(1 - alpha / 2, df)


def _relative_lift(
    m_c: float, m_t: float, var_c: float, var_t: float, alpha: float
) -> tuple[float | None, Interval | None]:
    if m_c == 0:
        return None, None
    lift = m_t / m_c - 1.0
    se = math.sqrt(var_t / m_c**2 + m_t**2 * var_c / m_c**4)
    z = norm_ppf(1 - alpha / 2)
    return lift, Interval(lift - z * se, lift + z * se, 1.0 - alpha)
