"""What to do about a struggling student, and the output rows both struggle models return.

Each feature that can drive a struggle prediction maps to one recommended action
(:data:`FEATURE_INTERVENTIONS`); the rule model names its actions per rule, the logistic
regression takes them from its top contributing features. Both models answer with the same
columns (:data:`OUTPUTS`), so either can stand in for the other (e.g. rules as the fallback).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import pandas as pd


class Intervention(StrEnum):
    """A recommended action for a teacher or the tutoring system."""

    WORKED_EXAMPLE = "worked example + hint"
    REVIEW_PREREQUISITE = "review prerequisite"
    RETEACH = "re-teach the concept another way"
    TUTOR_CHECK_IN = "1:1 tutor check-in"
    GUIDED_PRACTICE = "guided practice on the concept"
    CONFIDENCE_ITEM = "easier item to rebuild confidence"


FEATURE_INTERVENTIONS: dict[str, Intervention] = {
    "wrong_streak": Intervention.WORKED_EXAMPLE,
    "rolling_accuracy": Intervention.REVIEW_PREREQUISITE,
    "accuracy": Intervention.RETEACH,
    "attempts_since_correct": Intervention.TUTOR_CHECK_IN,
    "attempts": Intervention.GUIDED_PRACTICE,
    "right_streak": Intervention.CONFIDENCE_ITEM,
}
"""The action for a feature that pushes a row towards struggling (low accuracy, few attempts,
no right streak, a long wrong streak or a long time since the last success)."""

OUTPUTS: tuple[str, ...] = ("struggle_probability", "struggling", "interventions", "reasons")
"""Output columns of both struggle models, one row per input row."""


def output_frame(
    probability: npt.ArrayLike,
    struggling: npt.ArrayLike,
    interventions: Sequence[list[str]],
    reasons: Sequence[list[str]],
    index: pd.Index | None = None,
) -> pd.DataFrame:
    """The :data:`OUTPUTS` frame: float64 score, bool flag, and two lists of strings per row."""
    return pd.DataFrame(
        {
            "struggle_probability": np.asarray(probability, dtype=np.float64),
            "struggling": np.asarray(struggling, dtype=bool),
            "interventions": list(interventions),
            "reasons": list(reasons),
        },
        index=index,
    )


def unique(actions: Sequence[str]) -> list[str]:
    """``actions`` without repeats, first occurrence kept."""
    return list(dict.fromkeys(actions))
