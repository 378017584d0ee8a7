"""ChurnSim-style event generator (after "Fighting Churn with Data", use case 5).

Each user draws monthly rates for eight behaviours from a multivariate log-normal whose
components share one correlation, and a satisfaction factor. Every calendar month the user's
events are drawn day by day (weekdays at 0.8x, weekends at 1.2x the flat daily rate, normalised so
the month's expected count equals the monthly rate); the month's counts give a utility

    u = satisfaction * sum_b w_b * mean_b * (1 - exp(-2 * count_b / mean_b))

and the user churns at the month's end with probability ``1 - 1 / (1 + exp(-0.135 u + 0.5))``.
A churned user emits no further events. Labels and probabilities are exact, so models and
streaming features can be checked against the truth.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

EVENT_TYPES: tuple[str, ...] = (
    "post",
    "newfriend",
    "like",
    "adview",
    "dislike",
    "unfriend",
    "message",
    "reply",
)
"""The eight behaviours, in the order of every per-behaviour array."""

EVENT_MEANS: tuple[float, ...] = (20.0, 5.0, 40.0, 20.0, 10.0, 1.0, 20.0, 5.0)
"""Population mean of each behaviour's monthly rate."""

UTILITY_WEIGHTS: tuple[float, ...] = (1.0, 6.0, 0.5, -1.5, -1.0, -10.0, 1.0, 1.0)
"""Utility weight of each behaviour (negative: the behaviour annoys)."""

WEEKDAY_FACTOR = 0.8
WEEKEND_FACTOR = 1.2
_NS_PER_DAY = 86_400 * 10**9

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ChurnSimConfig:
    """Knobs of the generator; the defaults are the documented model."""

    rate_sigma: float = 0.5
    """Standard deviation of each log monthly rate."""
    rate_correlation: float = 0.5
    """Common correlation between the log rates of any two behaviours."""
    satisfaction_sigma: float = 0.5
    """Log-normal spread of the per-user satisfaction factor (its mean is 1)."""
    churn_slope: float = 0.135
    churn_offset: float = 0.5


@dataclass(frozen=True, slots=True)
class ChurnSimulation:
    """Result of :func:`simulate`.

    ``events``: one row per event, columns ``user_id`` (int64), ``timestamp`` (datetime64[ns]),
    ``event_type`` (categorical over :data:`EVENT_TYPES`), sorted by time.
    ``subscriptions``: one row per user and month the user was subscribed, columns ``user_id``,
    ``month_start``, ``month_end`` (exclusive), ``churned`` (bool: the user left at month end),
    ``utility`` and ``churn_probability`` (the true probability that was used for ``churned``).
    ``rates``: per-user true monthly rates (users x behaviours); ``satisfaction`` per user.
    """

    events: pd.DataFrame
    subscriptions: pd.DataFrame
    rates: pd.DataFrame
    satisfaction: pd.Series
    month_starts: list[pd.Timestamp] = field(default_factory=list)


def utility(counts: FloatArray, satisfaction: FloatArray) -> FloatArray:
    """Monthly utility of ``counts`` (users x behaviours) for users of the given satisfaction."""
    means = np.asarray(EVENT_MEANS)
    weights = np.asarray(UTILITY_WEIGHTS)
    saturation = 1.0 - np.exp(-2.0 * counts / means)
    result: FloatArray = satisfaction * (saturation * weights * means).sum(axis=1)
    return result


def churn_probability(u: FloatArray, config: ChurnSimConfig = ChurnSimConfig()) -> FloatArray:
    """Monthly churn probability ``1 - 1 / (1 + exp(-slope * u + offset))`` of utility ``u``."""
    stay = 1.0 / (1.0 + np.exp(-config.churn_slope * u + config.churn_offset))
    result: FloatArray = 1.0 - stay
    return result


def draw_rates(rng: np.random.Generator, n_users: int, config: ChurnSimConfig) -> FloatArray:
    """Per-user monthly rates: log-normal with the documented means and a common correlation."""
    k = len(EVENT_TYPES)
    s, rho = config.rate_sigma, config.rate_correlation
    cov = s * s * ((1.0 - rho) * np.eye(k) + rho * np.ones((k, k)))
    z = rng.multivariate_normal(np.zeros(k), cov, size=n_users, method="cholesky")
    rates: FloatArray = np.asarray(EVENT_MEANS) * np.exp(z - s * s / 2.0)
    return rates


def _draw_satisfaction(rng: np.random.Generator, n_users: int, sigma: float) -> FloatArray:
    result: FloatArray = np.exp(rng.normal(-sigma * sigma / 2.0, sigma, size=n_users))
    return result


def day_weights(month_start: pd.Timestamp, month_end: pd.Timestamp) -> FloatArray:
    """Share of a month's events falling on each day (weekend days 1.5x a weekday, sum 1)."""
    days = pd.date_range(month_start, month_end, inclusive="left", freq="D")
    factors = np.where(days.day_of_week >= 5, WEEKEND_FACTOR, WEEKDAY_FACTOR)
    result: FloatArray = factors / factors.sum()
    return result


def _month_events(
    rng: np.random.Generator,
    users: IntArray,
    rates: FloatArray,
    month_start: pd.Timestamp,
    month_end: pd.Timestamp,
) -> tuple[pd.DataFrame, FloatArray]:
    """Draw one month of events for ``users``; returns the events and the counts per behaviour."""
    weights = day_weights(month_start, month_end)
    lam = rates[:, None, :] * weights[None, :, None]  # users x days x behaviours
    counts = rng.poisson(lam)
    n_users, n_days, k = counts.shape
    flat = counts.ravel()
    user_idx = np.repeat(np.repeat(users, n_days * k), flat)
    day_idx = np.repeat(np.tile(np.repeat(np.arange(n_days), k), n_users), flat)
    type_idx = np.repeat(np.tile(np.arange(k), n_users * n_days), flat)
    offset = rng.integers(0, _NS_PER_DAY, size=flat.sum())
    ns = month_start.value + day_idx.astype(np.int64) * _NS_PER_DAY + offset
    events = pd.DataFrame(
        {
            "user_id": user_idx.astype(np.int64),
            "timestamp": pd.to_datetime(ns, unit="ns"),
            "event_type": pd.Categorical.from_codes(
                type_idx, categories=pd.Index(list(EVENT_TYPES))
            ),
        }
    )
    month_counts: FloatArray = counts.sum(axis=1).astype(np.float64)
    return events, month_counts


def month_starts(start: dt.date, n_months: int) -> list[pd.Timestamp]:
    """The ``n_months + 1`` boundaries of consecutive calendar-length months from ``start``."""
    first = pd.Timestamp(start).normalize()
    return [first + pd.DateOffset(months=m) for m in range(n_months + 1)]


def simulate(
    n_users: int = 2000,
    n_months: int = 6,
    start: dt.date = dt.date(2024, 1, 1),
    seed: int = 0,
    config: ChurnSimConfig = ChurnSimConfig(),
) -> ChurnSimulation:
    """Simulate ``n_users`` subscribers over ``n_months`` months from ``start``.

    Deterministic for a given ``seed``. All users subscribe at ``start``; a user who churns at the
    end of month ``m`` has a subscription row with ``churned=True`` for ``m`` and no events or
    rows afterwards. Raises ``ValueError`` for a non-positive ``n_users`` or ``n_months``.
    """
    if n_users <= 0 or n_months <= 0:
        raise ValueError(f"simulate needs n_users > 0 and n_months > 0, got {n_users}, {n_months}")
    rng = np.random.default_rng(seed)
    rates = draw_rates(rng, n_users, config)
    satisfaction = _draw_satisfaction(rng, n_users, config.satisfaction_sigma)
    bounds = month_starts(start, n_months)
    active = np.arange(n_users, dtype=np.int64)
    event_parts: list[pd.DataFrame] = []
    sub_parts: list[pd.DataFrame] = []
    for m in range(n_months):
        events, counts = _month_events(rng, active, rates[active], bounds[m], bounds[m + 1])
        u = utility(counts, satisfaction[active])
        p = churn_probability(u, config)
        churned = rng.random(len(active)) < p
        sub_parts.append(_subscription_rows(active, bounds[m], bounds[m + 1], churned, u, p))
        event_parts.append(events)
        active = active[~churned]
    return ChurnSimulation(
        events=_sort_events(pd.concat(event_parts, ignore_index=True)),
        subscriptions=pd.concat(sub_parts, ignore_index=True),
        rates=pd.DataFrame(rates, columns=list(EVENT_TYPES)).rename_axis("user_id"),
        satisfaction=pd.Series(satisfaction, name="satisfaction").rename_axis("user_id"),
        month_starts=bounds,
    )


def _subscription_rows(
    users: IntArray,
    month_start: pd.Timestamp,
    month_end: pd.Timestamp,
    churned: npt.NDArray[np.bool_],
    u: FloatArray,
    p: FloatArray,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": users,
            "month_start": month_start,
            "month_end": month_end,
            "churned": churned,
            "utility": u,
            "churn_probability": p,
        }
    )


def _sort_events(events: pd.DataFrame) -> pd.DataFrame:
    codes = events["event_type"].cat.codes.to_numpy()
    order = np.lexsort((codes, events["user_id"].to_numpy(), events["timestamp"].to_numpy()))
    return events.iloc[order].reset_index(drop=True)
