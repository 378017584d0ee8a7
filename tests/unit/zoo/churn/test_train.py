"""The churn trainer: its training set equals the online features, it beats a constant and stays
under the oracles; the Telco real-data check reaches its AUC bar."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from sibyl.zoo._training import TrainResult
from sibyl.zoo.churn import (
    ChurnConfig,
    OnlineFeatures,
    expected_probability,
    load_telco,
    simulate,
    telco,
    training_frame,
)
from sibyl.zoo.churn import train as churn_train


@pytest.fixture(scope="module")
def churn_result() -> TrainResult:
    return churn_train.train(ChurnConfig(n_users=4000, n_months=6), seed=0)


@pytest.fixture(scope="module")
def telco_result() -> TrainResult:
    return telco.train(seed=0)


def test_training_frame_equals_the_online_features() -> None:
    sim = simulate(n_users=60, n_months=3, start=dt.date(2024, 2, 1), seed=3)
    data = training_frame(sim)
    online = OnlineFeatures()
    events = sim.events.itertuples(index=False)
    pending = next(events, None)
    for scored_at, rows in data.groupby("scored_at", sort=True):
        while pending is not None and pending.timestamp <= scored_at:
            online.update(pending.user_id, pending.timestamp, pending.event_type)
            pending = next(events, None)
        expected = online.frame(scored_at, users=rows["user_id"].tolist())
        got = rows.set_index("user_id")[list(churn_train.FEATURES)]
        pd.testing.assert_frame_equal(got, expected, check_exact=True, check_names=False)


def test_training_frame_scores_subscribed_users_with_their_exact_labels() -> None:
    sim = simulate(n_users=300, n_months=4, seed=5)
    data = training_frame(sim)
    subs = sim.subscriptions.assign(scored_at=sim.subscriptions["month_start"] - pd.Timedelta(1))
    merged = data.merge(subs, on=["user_id", "scored_at"], validate="one_to_one")
    assert len(merged) == len(data)
    assert (merged["churned_x"] == merged["churned_y"].astype(np.int64)).all()
    assert set(data["scored_at"]) == {t - pd.Timedelta(1) for t in sim.month_starts[1:-1]}
    first = sim.month_starts[1]
    still_there = subs[(subs["month_start"] == first)]["user_id"]
    assert set(data[data["scored_at"] < first]["user_id"]) == set(still_there)


def test_split_keeps_each_user_on_one_side() -> None:
    data = training_frame(simulate(n_users=400, n_months=4, seed=1))
    train, test = churn_train.split_by_user(data, 0.25, seed=0)
    assert not set(data["user_id"][train]) & set(data["user_id"][test])
    assert 0.2 < test.mean() < 0.3


def test_churn_model_beats_a_constant_and_stays_under_the_oracles(
    churn_result: TrainResult,
) -> None:
    m = churn_result.metrics
    print(f"churn: {m}")
    assert list(churn_result.x_train.columns) == list(churn_train.FEATURES)
    assert all(dtype == np.float64 for dtype in churn_result.x_train.dtypes)
    assert m["roc_auc"] > 0.57  # a constant scores 0.5
    assert m["log_loss"] < m["baseline_log_loss"]
    # what a model of activity counts can know: the users' rates, not their satisfaction
    assert m["oracle_auc"] > m["hidden_oracle_auc"] > m["rates_oracle_auc"] > 0.55
    assert m["roc_auc"] < m["rates_oracle_auc"] + 0.02
    assert m["oracle_auc"] > 0.8


def test_expected_probability_oracles_are_probabilities() -> None:
    sim = simulate(n_users=200, n_months=1, seed=2)
    rates = sim.rates.to_numpy()
    hidden = expected_probability(rates, sim.satisfaction.to_numpy(), draws=16)
    prior = expected_probability(rates, None, draws=16)
    assert hidden.shape == prior.shape == (200,)
    assert ((hidden > 0) & (hidden < 1)).all() and ((prior > 0) & (prior < 1)).all()
    # the more satisfied of two users with the same rates churns less
    same = np.repeat(rates[:1], 2, axis=0)
    low, high = expected_probability(same, np.array([0.5, 2.0]), draws=64)
    assert low > high


def test_telco_loads_the_packaged_snapshot() -> None:
    frame = load_telco()
    assert frame.shape == (7043, 20)
    assert set(telco.FEATURES) | {telco.LABEL} == set(frame.columns)
    assert frame["churn"].eq("Yes").mean() == pytest.approx(0.265, abs=0.001)
    assert frame["total_charges"].isna().sum() == 11


def test_telco_meets_the_auc_bar(telco_result: TrainResult) -> None:
    m = telco_result.metrics
    print(f"churn-telco: {m}")
    assert m["roc_auc"] >= 0.83
    assert m["hgb_roc_auc"] >= 0.82
    assert m["n_test"] == pytest.approx(0.25 * 7043, abs=1)


def test_telco_model_fills_missing_total_charges(telco_result: TrainResult) -> None:
    row = telco_result.x_test.head(1).copy()
    row["tenure"], row["total_charges"] = 0, np.nan
    proba = telco_result.model.predict_proba(row)
    assert np.isfinite(proba).all()
