"""The ChurnSim generator: determinism, rates, weekly pattern, churn labels."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from sibyl.zoo.churn import EVENT_MEANS, EVENT_TYPES, ChurnSimulation, simulate
from sibyl.zoo.churn.simulate import churn_probability, utility


@pytest.fixture(scope="module")
def sim() -> ChurnSimulation:
    return simulate(n_users=600, n_months=4, start=dt.date(2024, 1, 1), seed=1)


def _monthly_counts(sim: ChurnSimulation) -> pd.DataFrame:
    """Events per (user, subscribed month, type), zeros included."""
    ev = sim.events
    month = pd.Series(pd.to_datetime(ev["timestamp"]).dt.to_period("M").dt.start_time)
    counts = ev.groupby(
        [ev["user_id"], month.rename("month_start"), ev["event_type"]], observed=False
    ).size()
    counts = counts.unstack("event_type")
    keys = pd.MultiIndex.from_frame(sim.subscriptions[["user_id", "month_start"]])
    return counts.reindex(keys, fill_value=0)


def test_same_seed_same_simulation() -> None:
    a = simulate(n_users=50, n_months=2, seed=3)
    b = simulate(n_users=50, n_months=2, seed=3)
    c = simulate(n_users=50, n_months=2, seed=4)
    pd.testing.assert_frame_equal(a.events, b.events)
    pd.testing.assert_frame_equal(a.subscriptions, b.subscriptions)
    assert not a.events.equals(c.events)


def test_events_shape_and_order(sim: ChurnSimulation) -> None:
    ev = sim.events
    assert list(ev.columns) == ["user_id", "timestamp", "event_type"]
    assert ev["timestamp"].is_monotonic_increasing
    assert set(ev["event_type"].cat.categories) == set(EVENT_TYPES)
    assert ev["timestamp"].min() >= sim.month_starts[0]
    assert ev["timestamp"].max() < sim.month_starts[-1]


def test_monthly_counts_have_the_documented_means(sim: ChurnSimulation) -> None:
    means = _monthly_counts(sim).mean()
    for name, expected in zip(EVENT_TYPES, EVENT_MEANS, strict=True):
        assert means[name] == pytest.approx(expected, rel=0.15), name


def test_event_types_are_positively_correlated(sim: ChurnSimulation) -> None:
    corr = np.log(sim.rates).corr().to_numpy()
    off_diagonal = corr[~np.eye(len(EVENT_TYPES), dtype=bool)]
    assert off_diagonal.min() > 0.2


def test_weekends_are_busier_than_weekdays(sim: ChurnSimulation) -> None:
    first = sim.events[sim.events["timestamp"] < sim.month_starts[1]]  # everyone still subscribed
    per_day = first.groupby(first["timestamp"].dt.normalize()).size()
    weekend = per_day.index.day_of_week >= 5
    ratio = per_day[weekend].mean() / per_day[~weekend].mean()
    assert 1.35 < ratio < 1.65


def test_churned_users_go_silent(sim: ChurnSimulation) -> None:
    subs = sim.subscriptions
    churned = subs[subs["churned"]]
    assert churned["user_id"].is_unique
    last_event = sim.events.groupby("user_id")["timestamp"].max()
    assert (
        last_event.reindex(churned["user_id"]).to_numpy() < churned["month_end"].to_numpy()
    ).all()
    later = subs.merge(churned[["user_id", "month_end"]], on="user_id", suffixes=("", "_churn"))
    assert (later["month_start"] < later["month_end_churn"]).all()


def test_churn_rate_is_plausible_and_follows_utility(sim: ChurnSimulation) -> None:
    subs = sim.subscriptions
    monthly = subs.groupby("month_start")["churned"].mean()
    assert ((monthly > 0.01) & (monthly < 0.2)).all()
    assert subs["churned"].mean() == pytest.approx(subs["churn_probability"].mean(), abs=0.015)
    assert np.corrcoef(subs["utility"], subs["churned"])[0, 1] < -0.1
    low = subs["utility"] < subs["utility"].quantile(0.25)
    assert subs.loc[low, "churned"].mean() > 2 * subs.loc[~low, "churned"].mean()


def test_utility_and_probability_match_the_formulas(sim: ChurnSimulation) -> None:
    counts = _monthly_counts(sim)[list(EVENT_TYPES)].to_numpy(dtype=float)
    sat = sim.satisfaction.to_numpy()[sim.subscriptions["user_id"].to_numpy()]
    u = utility(counts, sat)
    np.testing.assert_allclose(u, sim.subscriptions["utility"], rtol=1e-12)
    np.testing.assert_allclose(
        churn_probability(u), sim.subscriptions["churn_probability"], rtol=1e-12
    )
    assert churn_probability(np.array([0.0]))[0] == pytest.approx(1 - 1 / (1 + np.exp(0.5)))


def test_rejects_empty_simulation() -> None:
    with pytest.raises(ValueError, match="n_users"):
        simulate(n_users=0)
