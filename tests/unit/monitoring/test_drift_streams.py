"""Detection power and false-alarm rate on synthetic streams (the issue's acceptance test).

20 features of mixed kinds (12 normal with assorted means and scales, 2 log-normal, 2 Poisson
counts, 1 uniform, 1 exponential, 2 categoricals); reference 20,000 rows; windows of 2,000 rows
fed in batches of 100; default DriftConfig (α = 0.05, Benjamini–Hochberg over the window).

- drift: feature ``n3`` shifted by 0.25 σ → flagged in ≥ 95 % of 100 streams
- no drift: any feature flagged (the window's status is DRIFT) in ≤ 5 % of 200 streams

The seeds are fixed, so the numbers are reproducible; docs/drift.md quotes them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sibyl.monitoring.drift import DriftConfig, DriftMonitor, ReferenceProfile, build_profile

WINDOW = 2000
BATCH = 100
SHIFTED = "n3"
MEANS = np.array([0.0, 5.0, -3.0, 10.0, 0.5, 100.0, 1.0, -20.0, 2.0, 0.0, 7.0, 3.0])
SCALES = np.array([1.0, 2.0, 0.5, 2.5, 1.0, 15.0, 0.1, 4.0, 1.0, 3.0, 0.7, 1.5])
CITIES = (["paris", "rome", "oslo", "lima", "kyiv"], [0.35, 0.25, 0.2, 0.15, 0.05])
PLANS = ([f"plan{i}" for i in range(12)], np.arange(12, 0, -1) / np.arange(12, 0, -1).sum())


def stream(rng: np.random.Generator, n: int, shift_sigma: float = 0.0) -> pd.DataFrame:
    normal = rng.normal(MEANS, SCALES, size=(n, len(MEANS)))
    normal[:, 3] += shift_sigma * SCALES[3]
    frame = pd.DataFrame(normal, columns=[f"n{i}" for i in range(len(MEANS))])
    frame["logn0"], frame["logn1"] = rng.lognormal(0, 1, n), rng.lognormal(2, 0.5, n)
    frame["pois0"], frame["pois1"] = rng.poisson(3, n), rng.poisson(12, n)
    frame["unif"], frame["expo"] = rng.uniform(-1, 1, n), rng.exponential(5, n)
    frame["city"] = rng.choice(CITIES[0], n, p=CITIES[1])
    frame["plan"] = rng.choice(PLANS[0], n, p=PLANS[1])
    return frame


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    p = build_profile(stream(np.random.default_rng(2024), 20_000))
    assert len(p.features) == 20
    return p


def run_streams(
    profile: ReferenceProfile,
    count: int,
    shift_sigma: float,
    seed: int,
    config: DriftConfig | None = None,
) -> tuple[float, float]:
    """(share of windows flagging the shifted feature, share flagging anything)."""
    rng = np.random.default_rng(seed)
    hit = any_flag = 0
    for _ in range(count):
        monitor = DriftMonitor(profile, config)
        data = stream(rng, WINDOW, shift_sigma)
        for start in range(0, WINDOW, BATCH):
            monitor.observe(data.iloc[start : start + BATCH])
        report = monitor.report()
        assert report.rows == WINDOW
        hit += SHIFTED in report.drifted_features
        any_flag += bool(report.drifted_features)
    return hit / count, any_flag / count


def test_a_quarter_sigma_shift_in_one_of_20_features_is_detected(profile: ReferenceProfile) -> None:
    detection, _ = run_streams(profile, 100, 0.25, seed=1)
    print(f"\ndetection of a 0.25σ shift, window {WINDOW}: {detection:.1%} of 100 streams")
    assert detection >= 0.95


def test_a_stream_without_drift_stays_quiet_at_the_configured_rate(
    profile: ReferenceProfile,
) -> None:
    _, false_alarms = run_streams(profile, 200, 0.0, seed=2)
    print(
        f"\nfalse alarms without drift, window {WINDOW}: {false_alarms:.1%} of 200 streams "
        "(α = 0.05 after Benjamini–Hochberg)"
    )
    assert false_alarms <= 0.05


@pytest.mark.slow
def test_exhaustive_rates(profile: ReferenceProfile) -> None:
    """1,000 null streams and 300 shifted ones: tighter estimates of both rates."""
    _, false_alarms = run_streams(profile, 1000, 0.0, seed=3)
    detection, _ = run_streams(profile, 300, 0.25, seed=4)
    print(f"\nfalse alarms {false_alarms:.2%} (1000 streams), detection {detection:.1%} (300)")
    assert false_alarms <= 0.05 and detection >= 0.95
