"""Each drift statistic against scipy (or the formula by hand) on known distributions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from sibyl.monitoring.drift import ColumnKind, profile_column
from sibyl.monitoring.drift import _methods as m
from sibyl.monitoring.drift._encode import numeric_bins, numeric_excess

EPS = 1e-4


def _binned(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(counts, excess) of ``values`` over ``edges`` in the profile's bin layout."""
    index = numeric_bins(values, edges)
    counts = np.bincount(index, minlength=len(edges) + 2).astype(float)
    return counts, numeric_excess(values, index, edges)


def test_psi_matches_the_formula_by_hand() -> None:
    live, ref = np.array([0.1, 0.4, 0.5]), np.array([0.2, 0.4, 0.4])
    expected = (0.1 - 0.2) * np.log(0.1 / 0.2) + 0 + (0.5 - 0.4) * np.log(0.5 / 0.4)
    assert m.psi(live, ref, 1e-12) == pytest.approx(expected, rel=1e-9)
    assert m.psi(ref, ref, EPS) == 0.0


def test_smoothing_keeps_empty_bins_finite_and_silent() -> None:
    live, ref = np.array([0.0, 0.5, 0.5]), np.array([0.0, 0.5, 0.5])
    assert m.psi(live, ref, EPS) == pytest.approx(0.0, abs=1e-15)  # empty in both: no effect
    surprise = m.psi(np.array([0.1, 0.45, 0.45]), ref, EPS)  # mass where the reference had none
    assert np.isfinite(surprise) and surprise > 0.5


def test_kl_and_jensen_shannon_match_scipy() -> None:
    rng = np.random.default_rng(1)
    live, ref = rng.dirichlet(np.ones(12)), rng.dirichlet(np.ones(12))
    a, e = m.smooth(live, EPS), m.smooth(ref, EPS)
    assert m.kl(live, ref, EPS) == pytest.approx(stats.entropy(a, e), rel=1e-12)
    assert m.js_distance(live, ref, EPS) == pytest.approx(jensenshannon(a, e, base=2), rel=1e-9)
    assert m.psi(live, ref, EPS) == pytest.approx(
        stats.entropy(a, e) + stats.entropy(e, a), rel=1e-12
    )


def test_ks_on_binned_data_equals_scipy_when_bins_hold_single_values() -> None:
    rng = np.random.default_rng(2)
    ref = rng.poisson(4.0, 5000).astype(float)  # discrete: every value sits on a bin edge
    live = rng.poisson(4.6, 1500).astype(float)
    edges = np.append(np.unique(ref), ref.max() + 1)
    d, p = m.ks_binned(_binned(live, edges)[0][1:], _binned(ref, edges)[0][1:])
    exact = stats.ks_2samp(live, ref, method="asymp")
    assert d == pytest.approx(exact.statistic, abs=1e-12)
    assert p == pytest.approx(exact.pvalue, rel=0.03, abs=1e-12)


@pytest.mark.parametrize("shift", [0.0, 0.05, 0.1, 0.2])
def test_ks_binned_is_close_to_scipy_on_continuous_data(shift: float) -> None:
    rng = np.random.default_rng(3)
    ref, live = rng.normal(size=20_000), rng.normal(shift, 1.0, 2000)
    edges = np.asarray(profile_column("x", ref, ColumnKind.NUMERIC).edges)
    d, p = m.ks_binned(_binned(live, edges)[0][1:], _binned(ref, edges)[0][1:])
    exact = stats.ks_2samp(live, ref, method="asymp")
    assert d <= exact.statistic + 1e-12  # the binned statistic never exceeds the exact one
    assert d == pytest.approx(exact.statistic, abs=0.02)
    assert p >= exact.pvalue * 0.97  # hence a conservative p-value
    assert (p <= 0.05) == (exact.pvalue <= 0.05) or abs(exact.pvalue - 0.05) < 0.04


@pytest.mark.parametrize(
    ("name", "draw", "transform"),
    [
        ("shift 0.25σ", lambda r, n: r.normal(size=n), lambda x: x + 0.25),
        ("shift 1σ", lambda r, n: r.normal(size=n), lambda x: x + 1.0),
        ("scale ×1.5", lambda r, n: r.normal(size=n), lambda x: 1.5 * x),
        ("exponential shift", lambda r, n: r.exponential(size=n), lambda x: x + 0.3),
        ("no drift", lambda r, n: r.normal(size=n), lambda x: x),
    ],
)
def test_wasserstein_binned_matches_scipy(name: str, draw, transform) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(4)
    ref, live = draw(rng, 20_000), transform(draw(rng, 2000))
    column = profile_column("x", ref, ColumnKind.NUMERIC)
    edges = np.asarray(column.edges)
    counts, excess = _binned(live, edges)
    w = m.wasserstein_binned(
        edges,
        counts[1:],
        np.asarray(column.counts[1:], float),
        excess[1:],
        np.asarray(column.excess[1:]),
    )
    exact = stats.wasserstein_distance(live, ref)
    # exact wherever the CDFs do not cross inside a bin; a crossing bin is interpolated
    assert w == pytest.approx(exact, rel=0.02, abs=0.01), name


def test_chi2_matches_scipy_contingency_test() -> None:
    live = np.array([30.0, 0.0, 50.0, 20.0, 0.0])
    ref = np.array([300.0, 0.0, 400.0, 250.0, 50.0])
    statistic, p, df = m.chi2_homogeneity(live, ref)
    table = np.array([live, ref])[:, (live + ref) > 0]
    expected = stats.chi2_contingency(table, correction=False)
    assert statistic == pytest.approx(expected.statistic, rel=1e-10)
    assert p == pytest.approx(expected.pvalue, rel=1e-8)
    assert df == expected.dof


def test_mean_z_is_the_welch_statistic() -> None:
    rng = np.random.default_rng(5)
    ref, live = rng.normal(10, 2, 20_000), rng.normal(10.3, 2.4, 1500)
    mu, sigma = ref.mean(), ref.std(ddof=1)
    zs = (live - mu) / sigma
    z, d, p = m.mean_z(len(live), zs.sum(), (zs * zs).sum(), len(ref), sigma)
    welch = stats.ttest_ind_from_stats(
        live.mean(), live.std(ddof=1), len(live), mu, sigma, len(ref), equal_var=False
    )
    assert z == pytest.approx(welch.statistic, rel=1e-9)
    assert d == pytest.approx((live.mean() - mu) / sigma, rel=1e-9)
    assert p == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)


def test_mean_z_with_a_constant_reference() -> None:
    assert m.mean_z(10, 0.0, 0.0, 100, 0.0) == (0.0, 0.0, 1.0)
    z, _, p = m.mean_z(10, 5.0, 2.5, 100, 0.0)  # all live values 0.5 above a constant
    assert z == np.inf and p == 0.0


def test_benjamini_hochberg_matches_scipy() -> None:
    p = np.random.default_rng(6).uniform(0, 0.2, 40) ** 2
    assert m.benjamini_hochberg(p) == pytest.approx(stats.false_discovery_control(p), rel=1e-12)
    assert len(m.benjamini_hochberg(np.array([]))) == 0
