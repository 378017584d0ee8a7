"""Reference scores for the churn model: what an observer who knows more could reach.

A model sees only the recent activity counts. Three oracles bound what it can do:

* the **exact oracle** knows the probability each label was drawn with (it depends on the coming
  month's realised counts, which nobody knows at scoring time) — the ceiling of the data;
* the **hidden-factor oracle** knows the user's true monthly rates *and* satisfaction factor but
  not the coming month's draw: ``E_counts[p(u(counts, satisfaction))]``;
* the **rates oracle** knows the true rates only; the satisfaction factor is integrated over its
  population prior. This is (about) the ceiling of any predictor built from activity counts,
  since counts estimate the rates and say almost nothing about satisfaction.

The two expectations are Monte-Carlo estimates over Poisson monthly counts (the month's daily
weights sum to one, so a month's count of behaviour ``b`` is Poisson with the user's rate).
"""

from __future__ import annotations

import numpy as np

from sibyl.zoo.churn.simulate import (
    ChurnSimConfig,
    FloatArray,
    churn_probability,
    utility,
)

DRAWS = 64
"""Monte-Carlo draws per user for the expected-probability oracles."""


def expected_probability(
    rates: FloatArray,
    satisfaction: FloatArray | None,
    *,
    config: ChurnSimConfig = ChurnSimConfig(),
    draws: int = DRAWS,
    seed: int = 0,
) -> FloatArray:
    """Churn probability of each user (rows of ``rates``) before the month's events are drawn.

    With ``satisfaction`` (one per row) it is the hidden-factor oracle; with ``None`` the
    satisfaction is drawn from its log-normal prior as well (the rates oracle).
    """
    rng = np.random.default_rng(seed)
    sigma = config.satisfaction_sigma
    total = np.zeros(len(rates), dtype=np.float64)
    for _ in range(draws):
        counts = rng.poisson(rates).astype(np.float64)
        sat = (
            satisfaction
            if satisfaction is not None
            else np.exp(rng.normal(-sigma * sigma / 2.0, sigma, size=len(rates)))
        )
        total += churn_probability(utility(counts, sat), config)
    result: FloatArray = total / draws
    return result
