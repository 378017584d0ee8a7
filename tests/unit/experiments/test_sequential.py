"""Always-valid inference under repeated looks: A/A false-positive rates, coverage, power.

Simulations are vectorised over experiments × looks and call the same public functions that
``compare`` uses (``always_valid_p_value``, ``confidence_sequence_halfwidth``);
``test_compare_uses_the_same_mixture`` ties the two paths together.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import integrate, stats

from sibyl.experiments import (
    Moments,
    Proportion,
    always_valid_p_value,
    compare,
    confidence_sequence,
    confidence_sequence_halfwidth,
    default_tau,
    mixture_log_lr,
)

Array = np.ndarray[Any, Any]
SIMS, LOOKS = 2000, 20
ALPHA = 0.05


def _aa_rates(rng: np.random.Generator, p: float, per_look: int) -> tuple[Array, Array, Array]:
    """Cumulative successes of two identical arms at each look: (SIMS, LOOKS) arrays and n."""
    n = per_look * np.arange(1, LOOKS + 1)
    xc = rng.binomial(per_look, p, size=(SIMS, LOOKS)).cumsum(axis=1)
    xt = rng.binomial(per_look, p, size=(SIMS, LOOKS)).cumsum(axis=1)
    return xc, xt, n


def simulate_aa_rates(seed: int = 20261202) -> tuple[float, float, float]:
    """A/A rates, 500 users per arm per look, p = 0.10, τ = MDE = 0.01.

    Returns (always-valid FPR, naive any-look FPR, naive last-look-only FPR).
    """
    xc, xt, n = _aa_rates(np.random.default_rng(seed), 0.10, 500)
    pc, pt = xc / n, xt / n
    var = pc * (1 - pc) / n + pt * (1 - pt) / n
    always_valid = always_valid_p_value(pt - pc, var, tau=0.01)
    pooled = (xc + xt) / (2 * n)
    z = (pt - pc) / np.sqrt(pooled * (1 - pooled) * 2 / n)
    naive = 2 * stats.norm.sf(np.abs(z))
    return (
        float((always_valid <= ALPHA).any(axis=1).mean()),
        float((naive < ALPHA).any(axis=1).mean()),
        float((naive[:, -1] < ALPHA).mean()),
    )


def simulate_aa_means(seed: int = 7) -> tuple[float, float]:
    """A/A log-normal outcomes (σ_log = 0.5), 100 per arm per look, Welch, default τ = 0.1·σ̂.

    Returns (always-valid FPR, naive any-look FPR).
    """
    rng = np.random.default_rng(seed)
    n = 100 * np.arange(1, LOOKS + 1)

    def arm() -> tuple[Array, Array]:
        x = rng.lognormal(0.0, 0.5, size=(SIMS, LOOKS, 100))
        total, total_sq = x.sum(axis=2).cumsum(axis=1), (x * x).sum(axis=2).cumsum(axis=1)
        mean = total / n
        return mean, (total_sq - n * mean**2) / (n - 1)

    (mc, vc), (mt, vt) = arm(), arm()
    se2 = vc / n + vt / n
    tau = default_tau(float(vc[:, 0].mean()))
    always_valid = always_valid_p_value(mt - mc, se2, tau)
    df = se2**2 / ((vc / n) ** 2 / (n - 1) + (vt / n) ** 2 / (n - 1))
    naive = 2 * stats.t.sf(np.abs((mt - mc) / np.sqrt(se2)), df)
    return (
        float((always_valid <= ALPHA).any(axis=1).mean()),
        float((naive < ALPHA).any(axis=1).mean()),
    )


def test_aa_rates_always_valid_keeps_fpr_and_naive_peeking_inflates_it() -> None:
    """2,000 A/A experiments × 20 looks (see :func:`simulate_aa_rates`).

    Sizing: with N = 2,000 simulations the observed rate has standard error
    sqrt(0.05·0.95/2000) = 0.0049 at a true 5 % and sqrt(0.10·0.90/2000) = 0.0067 at a true 10 %.
    A true 10 % rate passes ``≤ 0.05`` only if the estimate falls 7.5 standard errors low
    (P ≈ 3e-14), so a procedure that inflates to 10 % is rejected essentially surely. The naive
    check ``> 0.10`` lies 10 standard errors above 5 %, so it cannot pass by chance if peeking did
    not inflate. Measured (seed 20261202): always-valid 0.0095, naive any-look 0.2325,
    naive last-look-only 0.049.
    """
    always_valid, naive_peeking, naive_once = simulate_aa_rates()
    assert always_valid <= ALPHA
    assert naive_peeking > 0.10
    assert abs(naive_once - ALPHA) < 0.015  # a single look at the horizon is fine


def test_aa_means_always_valid_keeps_fpr_with_skewed_latency_like_data() -> None:
    """Same design and sizing for a numeric metric (see :func:`simulate_aa_means`).
    Measured (seed 7): always-valid 0.0105, naive any-look 0.238.
    """
    always_valid, naive_peeking = simulate_aa_means()
    assert always_valid <= ALPHA
    assert naive_peeking > 0.10


def test_confidence_sequence_covers_the_true_difference_at_every_look() -> None:
    """Time-uniform coverage: the 95 % sequence must contain the true difference (0.02) at all
    20 looks in ≥ 95 % of 2,000 runs (a 90 % coverage would sit 15 standard errors lower).
    Measured (seed 11): 0.9835."""
    rng = np.random.default_rng(11)
    n = 400 * np.arange(1, LOOKS + 1)
    xc = rng.binomial(400, 0.30, size=(SIMS, LOOKS)).cumsum(axis=1)
    xt = rng.binomial(400, 0.32, size=(SIMS, LOOKS)).cumsum(axis=1)
    pc, pt = xc / n, xt / n
    var = pc * (1 - pc) / n + pt * (1 - pt) / n
    half = confidence_sequence_halfwidth(var, tau=0.02, alpha=ALPHA)
    covered_always = (np.abs(pt - pc - 0.02) < half).all(axis=1).mean()
    assert covered_always >= 0.95


def test_known_effect_010_vs_012_is_detected_by_the_always_valid_test() -> None:
    """1,000 experiments, looks every 2,000 users per arm up to 40,000: the mSPRT with τ = 0.02
    must reject in ≥ 95 % of them. Measured (seed 5): 100 %, median first rejection at 6,000."""
    rng = np.random.default_rng(5)
    n = 2000 * np.arange(1, LOOKS + 1)
    xc = rng.binomial(2000, 0.10, size=(1000, LOOKS)).cumsum(axis=1)
    xt = rng.binomial(2000, 0.12, size=(1000, LOOKS)).cumsum(axis=1)
    pc, pt = xc / n, xt / n
    p = always_valid_p_value(pt - pc, pc * (1 - pc) / n + pt * (1 - pt) / n, tau=0.02)
    assert (p <= ALPHA).any(axis=1).mean() >= 0.95
    result = compare(Proportion(20_000, 2_000), Proportion(20_000, 2_400), mde=0.02)
    assert result.always_valid_p_value < 1e-6
    assert result.confidence_sequence is not None and result.confidence_sequence.low > 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_compare_uses_the_same_mixture(seed: int) -> None:
    rng = np.random.default_rng(seed)
    c = Moments(int(rng.integers(50, 5000)), float(rng.normal()), float(rng.uniform(0.5, 2)))
    t = Moments(int(rng.integers(50, 5000)), float(rng.normal()), float(rng.uniform(0.5, 2)))
    result = compare(c, t, tau=0.3)
    var = c.variance / c.n + t.variance / t.n
    assert result.always_valid_p_value == pytest.approx(
        always_valid_p_value(t.mean - c.mean, var, 0.3)
    )
    cs = confidence_sequence(t.mean - c.mean, var, 0.3, 0.05)
    assert cs is not None and result.confidence_sequence == cs


def test_always_valid_interval_is_wider_than_the_fixed_one_and_inverts_the_p_value() -> None:
    result = compare(Proportion(5000, 500), Proportion(5000, 560), mde=0.02)
    cs, ci = result.confidence_sequence, result.difference_ci
    assert cs is not None and cs.low < ci.low and cs.high > ci.high
    # 0 is inside the 95 % sequence exactly when the always-valid p-value exceeds 0.05
    assert cs.contains(0.0) == (result.always_valid_p_value > 0.05)


def test_no_variation_yet_means_no_evidence() -> None:
    result = compare(Proportion(100, 0), Proportion(100, 0))
    assert result.always_valid_p_value == 1.0 and result.confidence_sequence is None


@pytest.mark.parametrize(
    ("estimate", "variance", "tau", "null"),
    [
        (0.01, 1e-4, 0.02, 0.0),
        (-0.03, 4e-5, 0.01, 0.0),
        (2.0, 0.5, 1.0, 1.5),
        (0.0, 1e-3, 0.1, 0.0),
    ],
)
def test_mixture_likelihood_ratio_matches_numerical_integration(
    estimate: float, variance: float, tau: float, null: float
) -> None:
    """Λ = ∫ N(Δ̂; θ, V)/N(Δ̂; θ₀, V) · N(θ; θ₀, τ²) dθ, integrated numerically (independent of the
    closed form in the module)."""
    sd = math.sqrt(variance)

    def integrand(theta: float) -> float:
        ratio = stats.norm.pdf(estimate, theta, sd) / stats.norm.pdf(estimate, null, sd)
        return float(ratio * stats.norm.pdf(theta, null, tau))

    numeric, _ = integrate.quad(integrand, null - 12 * tau, null + 12 * tau, points=[estimate])
    assert mixture_log_lr(estimate, variance, tau, null) == pytest.approx(
        math.log(numeric), abs=1e-6
    )


def test_confidence_sequence_ends_where_the_likelihood_ratio_reaches_one_over_alpha() -> None:
    estimate, variance, tau = 0.013, 2e-5, 0.01
    cs = confidence_sequence(estimate, variance, tau, 0.05)
    assert cs is not None
    for edge in (cs.low, cs.high):
        assert mixture_log_lr(estimate, variance, tau, null=edge) == pytest.approx(math.log(20))
