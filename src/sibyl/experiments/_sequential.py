r"""Always-valid inference: the normal-mixture mSPRT and its confidence sequence.

Model (Johari, Koomen, Pekelis & Walsh 2017, "Peeking at A/B tests", KDD; and "Always valid
inference", Operations Research 2022): at each look the estimate ``Δ̂`` of an effect ``Δ`` is
treated as ``N(Δ, V)`` where ``V`` is its current variance (``σ²_T/n_T + σ²_C/n_C`` for a
difference of two means, ``σ²/n`` for one mean), i.e. a Brownian motion with drift observed in
information time ``1/V``. Mixing the likelihood ratio of ``Δ = θ`` against ``Δ = θ₀`` over
``θ − θ₀ ~ N(0, τ²)`` gives the mixture likelihood ratio

.. math::

    Λ(θ₀) = \sqrt{\frac{V}{V + τ²}}\;
            \exp\!\Big(\frac{τ² (Δ̂ − θ₀)²}{2 V (V + τ²)}\Big),

a non-negative martingale under ``H₀: Δ = θ₀`` with ``E Λ = 1``. By Ville's inequality
``P(∃ look: Λ ≥ 1/α) ≤ α``, so

* the **always-valid p-value** ``p = min(1, 1/Λ(0))`` may be read after every look, and stopping
  the first time ``p ≤ α`` keeps the type-I error ≤ α (the running minimum over looks is valid
  too; callers that keep history may carry it);
* the **confidence sequence** ``{θ₀ : Λ(θ₀) < 1/α}`` is
  ``Δ̂ ± sqrt( 2V(V+τ²)/τ² · (log(1/α) + ½·log((V+τ²)/V)) )`` and covers ``Δ`` at every look
  simultaneously with probability ≥ 1 − α (intersecting successive intervals stays valid).

The guarantee is asymptotic in two ways the docstrings of callers repeat: ``V`` is a plug-in
estimate, and the normal approximation of ``Δ̂`` needs a few dozen observations per arm. With
``V = 0`` (no variation observed yet) nothing can be concluded: ``p = 1`` and no interval.

**Choice of τ.** ``τ`` is the spread of effects the test is tuned to find; power is best for
effects near ``τ`` (JKPW §4). sibyl sets ``τ`` to the configured minimum detectable effect in
absolute units; without one it uses ``τ = 0.1·σ̂`` (a standardized effect of 0.1, σ̂ the root
mean per-observation variance of the two arms), see :func:`default_tau`.

All functions here accept numpy arrays and broadcast, so simulations can call them directly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, TypeVar, overload

import numpy as np

from sibyl.errors import InvalidInputError

DEFAULT_STANDARDIZED_TAU = 0.1
"""``τ / σ`` used when no minimum detectable effect is configured."""

Num = TypeVar("Num", float, np.ndarray[Any, Any])


@dataclass(frozen=True)
class Interval:
    """A closed interval ``[low, high]`` at confidence ``level`` (e.g. 0.95)."""

    low: float
    high: float
    level: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_tau(tau: float) -> None:
    if not (math.isfinite(tau) and tau > 0):
        raise InvalidInputError(
            f"the mixing scale τ must be a finite number > 0, got {tau}", field="tau"
        )


@overload
def mixture_log_lr(estimate: float, variance: float, tau: float, null: float = 0.0) -> float: ...
@overload
def mixture_log_lr(
    estimate: np.ndarray[Any, Any],
    variance: np.ndarray[Any, Any] | float,
    tau: float,
    null: float = 0.0,
) -> np.ndarray[Any, Any]: ...
def mixture_log_lr(estimate: Any, variance: Any, tau: float, null: float = 0.0) -> Any:
    """``log Λ(null)`` of the normal-mixture mSPRT (module docstring); 0 where ``V = 0``."""
    _check_tau(tau)
    est = np.asarray(estimate, dtype=float)
    var = np.asarray(variance, dtype=float)
    tau2 = tau * tau
    safe = np.where(var > 0, var, 1.0)
    log_lr = 0.5 * np.log(safe / (safe + tau2)) + tau2 * (est - null) ** 2 / (
        2.0 * safe * (safe + tau2)
    )
    out = np.where(var > 0, log_lr, 0.0)
    return float(out) if out.ndim == 0 else out


@overload
def always_valid_p_value(estimate: float, variance: float, tau: float) -> float: ...
@overload
def always_valid_p_value(
    estimate: np.ndarray[Any, Any], variance: np.ndarray[Any, Any] | float, tau: float
) -> np.ndarray[Any, Any]: ...
def always_valid_p_value(estimate: Any, variance: Any, tau: float) -> Any:
    """``min(1, 1/Λ(0))`` at this look: the mSPRT always-valid p-value for ``H₀: Δ = 0``."""
    log_lr = np.asarray(mixture_log_lr(estimate, variance, tau))
    out = np.minimum(1.0, np.exp(-np.maximum(log_lr, -700.0)))
    return float(out) if out.ndim == 0 else out


@overload
def confidence_sequence_halfwidth(variance: float, tau: float, alpha: float) -> float: ...
@overload
def confidence_sequence_halfwidth(
    variance: np.ndarray[Any, Any], tau: float, alpha: float
) -> np.ndarray[Any, Any]: ...
def confidence_sequence_halfwidth(variance: Any, tau: float, alpha: float) -> Any:
    """Half-width of the (1 − α) confidence sequence at variance ``V`` (``inf`` where V = 0)."""
    _check_tau(tau)
    if not 0 < alpha < 1:
        raise InvalidInputError(f"alpha must be in (0, 1), got {alpha}", field="alpha")
    var = np.asarray(variance, dtype=float)
    tau2 = tau * tau
    safe = np.where(var > 0, var, 1.0)
    radius2 = (
        2.0
        * safe
        * (safe + tau2)
        / tau2
        * (math.log(1.0 / alpha) + 0.5 * np.log((safe + tau2) / safe))
    )
    out = np.where(var > 0, np.sqrt(radius2), np.inf)
    return float(out) if out.ndim == 0 else out


def confidence_sequence(
    estimate: float, variance: float, tau: float, alpha: float
) -> Interval | None:
    """The (1 − α) always-valid interval ``Δ̂ ± halfwidth``; ``None`` while ``V = 0``."""
    half = confidence_sequence_halfwidth(variance, tau, alpha)
    if not math.isfinite(half):
        return None
    return Interval(estimate - half, estimate + half, 1.0 - alpha)


def default_tau(per_observation_variance: float, mde: float | None = None) -> float:
    """``τ = |mde|`` when given, else ``0.1·σ̂`` (``σ̂² = per_observation_variance``).

    Falls back to ``1e-12`` so a degenerate arm (all outcomes equal) still yields a finite τ;
    the test then reports ``p = 1`` through ``V = 0`` rather than failing.
    """
    if mde is not None and mde != 0:
        return abs(mde)
    return max(DEFAULT_STANDARDIZED_TAU * math.sqrt(max(per_observation_variance, 0.0)), 1e-12)
