r"""Drift statistics on binned data: pure functions of bin counts and running sums.

``live`` and ``ref`` are proportions (or counts) over the same bins. Formulas:

- PSI ``Σ (a − e) ln(a / e)``; KL ``Σ a ln(a / e)`` (live ‖ reference, nats); Jensen–Shannon
  distance ``sqrt(½ KL₂(a ‖ m) + ½ KL₂(e ‖ m))``, ``m = (a + e) / 2``, base 2, in [0, 1]. All
  three on smoothed proportions ``(p + ε) / (1 + Bε)`` (a bin empty in both contributes 0).
- KS: ``D = max |F_live − F_ref|`` over the bin edges (the binned CDFs are exact there, so
  ``D`` never exceeds the unbinned statistic); p-value from Kolmogorov's limiting
  distribution with Stephens' correction, ``Q((√nₑ + 0.12 + 0.11/√nₑ)·D)``, at the effective
  size ``nₑ = n·m / (n + m)`` of the non-null counts. It matches ``scipy.stats.ks_2samp``
  (``method="asymp"``, exact finite-``nₑ`` distribution) within 3 % relative for
  ``1e-4 < p < 0.1`` and 0.012 absolute elsewhere (nₑ ≥ 100), at 1/1000 of its cost.
- Wasserstein-1 ``∫ |F_live − F_ref| dx``: per bin, ``|∫ ΔF|`` computed exactly from the bin's
  count and *excess* (the sum of its values' distances from the bin edge) — exact unless the
  CDFs cross inside the bin, where ΔF is taken as linear between the edges; beyond the
  reference range ``E[(e₀ − X)⁺]`` and ``E[(X − e_m)⁺]`` exactly. Divided by the reference
  standard deviation.
- χ²: Pearson's test of homogeneity of the 2 × B table (live counts, reference counts), bins
  empty in both dropped, ``df = B' − 1``; effect size Cohen's ``w = sqrt(Σ (a − e)² / e)`` on
  smoothed proportions.
- Mean z (Welch): ``z = (x̄ − μ) / sqrt(s²/n + σ²/N)``; effect ``d = (x̄ − μ) / σ``.
- Benjamini–Hochberg step-up adjusted p-values.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special


def smooth(p: np.ndarray, eps: float) -> np.ndarray:
    """Proportions ``p`` (summing to 1) with ``eps`` added to every bin, renormalised."""
    return (p + eps) / (1.0 + eps * len(p))


def psi(live: np.ndarray, ref: np.ndarray, eps: float) -> float:
    a, e = smooth(live, eps), smooth(ref, eps)
    return float(np.sum((a - e) * np.log(a / e)))


def kl(live: np.ndarray, ref: np.ndarray, eps: float) -> float:
    a, e = smooth(live, eps), smooth(ref, eps)
    return float(np.sum(a * np.log(a / e)))


def js_distance(live: np.ndarray, ref: np.ndarray, eps: float) -> float:
    a, e = smooth(live, eps), smooth(ref, eps)
    m = (a + e) / 2.0
    divergence = 0.5 * np.sum(a * np.log2(a / m)) + 0.5 * np.sum(e * np.log2(e / m))
    return math.sqrt(max(float(divergence), 0.0))


def cohens_w(live: np.ndarray, ref: np.ndarray, eps: float) -> float:
    a, e = smooth(live, eps), smooth(ref, eps)
    return math.sqrt(float(np.sum((a - e) ** 2 / e)))


def ks_binned(live_counts: np.ndarray, ref_counts: np.ndarray) -> tuple[float, float]:
    """``(D, p)`` from non-null bin counts in bin order (below, interior…, above)."""
    n, m = float(live_counts.sum()), float(ref_counts.sum())
    if n == 0 or m == 0:
        return 0.0, 1.0
    d = float(np.max(np.abs(np.cumsum(live_counts) / n - np.cumsum(ref_counts) / m)))
    root = math.sqrt(n * m / (n + m))
    return d, float(np.clip(special.kolmogorov((root + 0.12 + 0.11 / root) * d), 0.0, 1.0))


def wasserstein_binned(
    edges: np.ndarray,
    live_counts: np.ndarray,
    ref_counts: np.ndarray,
    live_excess: np.ndarray,
    ref_excess: np.ndarray,
) -> float:
    """W1 in the feature's units from non-null bins (below, interior…, above): counts and
    excess sums (distance of the values from the bin's finite edge, see ``_encode``)."""
    n, m = float(live_counts.sum()), float(ref_counts.sum())
    if n == 0 or m == 0:
        return 0.0
    # ΔF at each edge e_i (share strictly below it); exact ∫ΔF over each bin from the excess:
    # ∫_a^b F = (b − a)·F(b) − Σ(x − a)/n, and ∫_{-∞}^{e₀} F = Σ(e₀ − x)/n, same above.
    diff = np.cumsum(live_counts)[:-1] / n - np.cumsum(ref_counts)[:-1] / m
    excess = live_excess / n - ref_excess / m
    d0, d1, width = diff[:-1], diff[1:], np.diff(edges)
    exact = np.abs(width * d1 - excess[1:-1])
    total = np.abs(d0) + np.abs(d1)
    crossing = (d0 * d1 < 0) & (total > 0)
    linear = (d0 * d0 + d1 * d1) / (2.0 * np.where(crossing, total, 1.0)) * width
    inside = np.where(crossing, linear, exact)
    return float(inside.sum() + abs(excess[0]) + abs(excess[-1]))


def chi2_homogeneity(live_counts: np.ndarray, ref_counts: np.ndarray) -> tuple[float, float, int]:
    """``(χ², p, df)`` of the 2 × B table; ``(0, 1, 0)`` when fewer than two bins are used."""
    used = (live_counts + ref_counts) > 0
    a, b = live_counts[used].astype(np.float64), ref_counts[used].astype(np.float64)
    n, m = a.sum(), b.sum()
    if len(a) < 2 or n == 0 or m == 0:
        return 0.0, 1.0, 0
    col = a + b
    exp_a, exp_b = col * n / (n + m), col * m / (n + m)
    statistic = float(np.sum((a - exp_a) ** 2 / exp_a) + np.sum((b - exp_b) ** 2 / exp_b))
    df = len(a) - 1
    return statistic, float(special.chdtrc(df, statistic)), df


def mean_z(
    n: float, sum_z: float, sumsq_z: float, ref_n: float, ref_std: float
) -> tuple[float, float, float]:
    """``(z, d, p)`` from the live count and sums of ``z = (x − μ) / σ`` (σ = 1 when the
    reference is constant: then any live deviation is infinitely significant)."""
    if n == 0:
        return 0.0, 0.0, 1.0
    d = sum_z / n
    live_var = max(sumsq_z - n * d * d, 0.0) / (n - 1) if n > 1 else 1.0
    ref_var = 1.0 if ref_std > 0 else 0.0
    se = math.sqrt(live_var / n + ref_var / max(ref_n, 1.0))
    # both spreads 0: any difference is certain
    z = d / se if se > 0 else (0.0 if d == 0 else math.copysign(math.inf, d))
    return z, d, float(2.0 * special.ndtr(-abs(z)))


def divergence_noise(method: str, n: float, ref_counts: np.ndarray) -> float:
    """Expected PSI / KL / JS distance between two samples of one distribution (sizes ``n``
    and the reference's), to first order: ``Σ (p̂ − q̂)² / q`` has mean ``(B − 1)(1/n + 1/N)``
    over the ``B`` bins the reference fills; PSI is that, KL half of it, JS divergence an
    eighth (in nats; the JS *distance* is the square root of the divergence in bits)."""
    big_n = float(ref_counts.sum())
    if n <= 0 or big_n <= 0:
        return 0.0
    base = (np.count_nonzero(ref_counts) - 1) * (1.0 / n + 1.0 / big_n)
    if method == "psi":
        return float(base)
    if method == "kl":
        return float(base / 2.0)
    return math.sqrt(base / (8.0 * math.log(2.0)))


def wasserstein_noise(
    edges: np.ndarray, n: float, ref_counts: np.ndarray, ref_excess: np.ndarray
) -> float:
    """Expected W1 between two samples of the reference distribution: ``E|F̂ − Ĝ| ≈
    sqrt(2/π) · sqrt(F(1 − F) · (1/n + 1/N))`` pointwise, integrated bin by bin with F at the
    bin's mean CDF (exact from the excess sums). Arguments are non-null bins (below,
    interior…, above)."""
    big_n = float(ref_counts.sum())
    if n <= 0 or big_n <= 0:
        return 0.0
    width = np.diff(edges)
    cdf_hi = np.cumsum(ref_counts)[1:-1] / big_n  # at each interior bin's upper edge
    mean_cdf = np.clip(cdf_hi - ref_excess[1:-1] / big_n / np.where(width > 0, width, 1.0), 0, 1)
    spread = float(np.sum(np.sqrt(mean_cdf * (1.0 - mean_cdf)) * width))
    return math.sqrt(2.0 / math.pi) * spread * math.sqrt(1.0 / n + 1.0 / big_n)


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Adjusted p-values (q-values) of the BH step-up procedure, in input order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.clip(adjusted, 0.0, 1.0)
    return out
