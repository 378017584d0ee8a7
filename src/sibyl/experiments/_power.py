r"""Required sample size and achieved power for a minimum detectable effect (two-sided tests).

**Proportions** (Fleiss, Levin & Paik, *Statistical Methods for Rates and Proportions*, 3rd ed.,
§4.2, without continuity correction), ``p₁`` the baseline, ``p₂ = p₁ + δ``, ``p̄ = (p₁+p₂)/2``:

.. math::  n = \frac{\big(z_{1-α/2}\sqrt{2\bar p\bar q} + z_{1-β}\sqrt{p_1q_1 + p_2q_2}\big)^2}{δ^2}

per variant; achieved power at ``n_C, n_T`` is
``Φ((|δ| − z_{1−α/2}·se₀)/se₁) + Φ((−|δ| − z_{1−α/2}·se₀)/se₁)`` with the null standard error
``se₀² = p̄q̄(1/n_C + 1/n_T)`` (``p̄`` weighted by n) and ``se₁² = p₁q₁/n_C + p₂q₂/n_T``.

**Means** (two-sample t, common standard deviation σ): exact power from the noncentral t,
``ν = n_C + n_T − 2``, ``λ = δ / (σ·sqrt(1/n_C + 1/n_T))``,
``power = P(T'_{ν,λ} > t_{1−α/2,ν}) + P(T'_{ν,λ} < −t_{1−α/2,ν})``; the required ``n`` is the
smallest equal per-variant size reaching the target, found upward from the normal
approximation ``2σ²(z_{1−α/2} + z_{1−β})²/δ²`` (Cohen 1988, Table 2.4.1: d = 0.5 → 64).

These are fixed-horizon sizes. The always-valid test needs more data for the same power; the
decision rule uses the fixed size as the point after which "no difference" may be declared.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from sibyl.errors import InvalidInputError
from sibyl.experiments._dist import nct_cdf, norm_cdf, norm_ppf, t_ppf
from sibyl.experiments._stats import MetricKind

_MAX_N = 10**10


@dataclass(frozen=True)
class PowerAnalysis:
    """Planned vs current sample size for one metric and one treatment arm."""

    kind: MetricKind
    baseline: float
    mde: float
    alpha: float
    target_power: float
    required_n_per_variant: int
    n_control: int
    n_treatment: int
    achieved_power: float
    reached: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def absolute_mde(baseline: float, mde: float, relative: bool) -> float:
    """``mde`` in the metric's units (``mde·baseline`` when relative); raises when it is 0."""
    delta = mde * baseline if relative else mde
    if delta == 0 or not math.isfinite(delta):
        raise InvalidInputError(
            f"the minimum detectable effect must be a finite non-zero number, got {delta}"
            + (" (a relative MDE needs a non-zero baseline)" if relative else ""),
            field="mde",
        )
    return abs(delta)


def _check(alpha: float, power: float) -> None:
    if not (0 < alpha < 1 and 0 < power < 1):
        raise InvalidInputError(
            f"alpha and power must be in (0, 1), got {alpha}, {power}", field="alpha"
        )


def _rates(baseline: float, delta: float) -> tuple[float, float]:
    p2 = baseline + delta
    if not (0 < baseline < 1 and 0 < p2 < 1):
        raise InvalidInputError(
            f"baseline rate {baseline} and baseline + MDE {p2} must both lie in (0, 1)", field="mde"
        )
    return baseline, p2


def required_sample_size(
    kind: MetricKind,
    baseline: float,
    mde: float,
    *,
    sd: float | None = None,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
) -> int:
    """Per-variant ``n`` (equal allocation) to detect ``mde`` with the given α and power.

    ``baseline`` is the control rate or mean; ``sd`` the per-observation standard deviation,
    required for means. Raises ``InvalidInputError`` on out-of-range inputs.
    """
    _check(alpha, power)
    delta = absolute_mde(baseline, mde, relative)
    za, zb = norm_ppf(1 - alpha / 2), norm_ppf(power)
    if kind is MetricKind.RATE:
        p1, p2 = _rates(baseline, delta)
        pbar = (p1 + p2) / 2
        root = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
        return math.ceil(root**2 / delta**2)
    sigma = _sd(sd)
    n = max(2, math.ceil(2 * sigma**2 * (za + zb) ** 2 / delta**2))
    while n > 2 and _t_power(delta, sigma, n - 1, n - 1, alpha) >= power:
        n -= 1
    while _t_power(delta, sigma, n, n, alpha) < power and n < _MAX_N:
        n += 1
    return n


def achieved_power(
    kind: MetricKind,
    baseline: float,
    mde: float,
    n_control: int,
    n_treatment: int,
    *,
    sd: float | None = None,
    relative: bool = False,
    alpha: float = 0.05,
) -> float:
    """Power of the two-sided fixed-horizon test at the current ``n_control``, ``n_treatment``."""
    _check(alpha, 0.5)
    delta = absolute_mde(baseline, mde, relative)
    if min(n_control, n_treatment) < (1 if kind is MetricKind.RATE else 2):
        return 0.0
    if kind is MetricKind.MEAN:
        return _t_power(delta, _sd(sd), n_control, n_treatment, alpha)
    p1, p2 = _rates(baseline, delta)
    pbar = (n_control * p1 + n_treatment * p2) / (n_control + n_treatment)
    se0 = math.sqrt(pbar * (1 - pbar) * (1 / n_control + 1 / n_treatment))
    se1 = math.sqrt(p1 * (1 - p1) / n_control + p2 * (1 - p2) / n_treatment)
    za = norm_ppf(1 - alpha / 2)
    return float(norm_cdf((delta - za * se0) / se1) + norm_cdf((-delta - za * se0) / se1))


def power_analysis(
    kind: MetricKind,
    baseline: float,
    mde: float,
    n_control: int,
    n_treatment: int,
    *,
    sd: float | None = None,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
) -> PowerAnalysis:
    """Both numbers at once: the required per-variant ``n`` and the power reached so far."""
    required = required_sample_size(
        kind, baseline, mde, sd=sd, relative=relative, alpha=alpha, power=power
    )
    got = achieved_power(
        kind, baseline, mde, n_control, n_treatment, sd=sd, relative=relative, alpha=alpha
    )
    return PowerAnalysis(
        kind,
        baseline,
        absolute_mde(baseline, mde, relative),
        alpha,
        power,
        required,
        n_control,
        n_treatment,
        got,
        min(n_control, n_treatment) >= required,
    )


def _sd(sd: float | None) -> float:
    if sd is None or not (math.isfinite(sd) and sd > 0):
        raise InvalidInputError(
            f"a mean metric needs a standard deviation > 0, got {sd}", field="sd"
        )
    return sd


def _t_power(delta: float, sigma: float, n_c: int, n_t: int, alpha: float) -> float:
    df = n_c + n_t - 2
    ncp = delta / (sigma * math.sqrt(1 / n_c + 1 / n_t))
    crit = t_ppf(1 - alpha / 2, df)
    return 1.0 - nct_cdf(crit, df, ncp) + nct_cdf(-crit, df, ncp)
