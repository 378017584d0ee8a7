"""The rule-based struggle model: a few readable thresholds, each with its own intervention.

Each rule has a *margin*, positive exactly when it fires:

* ``wrong_streak>=3`` — ``wrong_streak − 3 + 0.5`` (3 or more wrong in a row on the concept);
* ``rolling_accuracy<0.4 after>=4 attempts`` — ``min(attempts − 4 + 0.5,
  10·(0.4 − rolling_accuracy))``;
* ``attempts_since_correct>=8`` — ``attempts_since_correct − 8 + 0.5`` (no right answer on any
  concept for 8 attempts).

A row is struggling when any rule fires; its score ``sigmoid(max margin)`` is above 0.5 exactly
then and grows with the evidence, so the rules can be ranked (AUC) — but it is a score, not a
calibrated probability.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from sibyl.zoo.struggle.features import check_features
from sibyl.zoo.struggle.interventions import Intervention, output_frame, unique

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Rule:
    """One threshold rule: its name (the reason shown), intervention and margin function."""

    name: str
    intervention: Intervention
    margin: Callable[[pd.DataFrame], FloatArray]
    """Per row, > 0 exactly when the rule fires; larger means more evidence of struggle."""


def _wrong_streak(frame: pd.DataFrame) -> FloatArray:
    return np.asarray(frame["wrong_streak"] - 3 + 0.5, dtype=np.float64)


def _low_rolling_accuracy(frame: pd.DataFrame) -> FloatArray:
    enough = frame["attempts"].to_numpy() - 4 + 0.5
    low = 10.0 * (0.4 - frame["rolling_accuracy"].to_numpy())
    return np.asarray(np.minimum(enough, low), dtype=np.float64)


def _no_success(frame: pd.DataFrame) -> FloatArray:
    return np.asarray(frame["attempts_since_correct"] - 8 + 0.5, dtype=np.float64)


RULES: tuple[Rule, ...] = (
    Rule("wrong_streak>=3", Intervention.WORKED_EXAMPLE, _wrong_streak),
    Rule(
        "rolling_accuracy<0.4 after>=4 attempts",
        Intervention.REVIEW_PREREQUISITE,
        _low_rolling_accuracy,
    ),
    Rule("attempts_since_correct>=8", Intervention.TUTOR_CHECK_IN, _no_success),
)


class RuleModel:
    """Scores rows of :data:`~sibyl.zoo.struggle.features.FEATURES` with :data:`RULES`.

    Stateless and thread-safe. Inputs are validated by
    :func:`~sibyl.zoo.struggle.features.check_features` (:class:`InvalidInputError`).
    """

    def __init__(self, rules: tuple[Rule, ...] = RULES) -> None:
        self.rules = rules

    def margins(self, frame: Any) -> FloatArray:
        """``(n, len(rules))`` margins of every rule (> 0: fired)."""
        checked = check_features(frame)
        return np.column_stack([rule.margin(checked) for rule in self.rules])

    def score(self, frame: Any) -> FloatArray:
        """The monotone rule score in (0, 1): ``sigmoid(max margin)``, > 0.5 iff a rule fired."""
        best = self.margins(frame).max(axis=1)
        return np.asarray(1.0 / (1.0 + np.exp(-best)), dtype=np.float64)

    def predict(self, frame: Any) -> pd.DataFrame:
        """One :data:`~sibyl.zoo.struggle.interventions.OUTPUTS` row per input row: the score,
        whether a rule fired, the fired rules' interventions and names (empty when none)."""
        margins = self.margins(frame)
        fired = margins > 0
        score = 1.0 / (1.0 + np.exp(-margins.max(axis=1)))
        reasons = [[r.name for r, f in zip(self.rules, row, strict=True) if f] for row in fired]
        actions = [
            unique([r.intervention.value for r, f in zip(self.rules, row, strict=True) if f])
            for row in fired
        ]
        return output_frame(score, fired.any(axis=1), actions, reasons, index=frame.index)
