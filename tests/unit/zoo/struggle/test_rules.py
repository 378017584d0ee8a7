"""The rule model: which rule fires, its interventions and reasons, a score that ranks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sibyl.zoo.struggle.interventions import OUTPUTS, Intervention
from sibyl.zoo.struggle.rules import RuleModel


def _rows(*rows: dict[str, float]) -> pd.DataFrame:
    base = {
        "attempts": 6,
        "accuracy": 0.5,
        "rolling_accuracy": 0.6,
        "right_streak": 1,
        "wrong_streak": 0,
        "attempts_since_correct": 0,
    }
    return pd.DataFrame([{**base, **row} for row in rows])


def test_each_rule_fires_with_its_own_intervention_and_reason() -> None:
    frame = _rows(
        {},  # doing fine
        {"right_streak": 0, "wrong_streak": 3, "attempts_since_correct": 3},
        {"rolling_accuracy": 0.2},
        {"right_streak": 0, "wrong_streak": 2, "attempts_since_correct": 8},
        {
            "rolling_accuracy": 0.0,
            "right_streak": 0,
            "wrong_streak": 5,
            "attempts_since_correct": 5,
        },
    )
    out = RuleModel().predict(frame)
    assert tuple(out.columns) == OUTPUTS
    assert out["struggling"].tolist() == [False, True, True, True, True]
    assert out["reasons"].tolist() == [
        [],
        ["wrong_streak>=3"],
        ["rolling_accuracy<0.4 after>=4 attempts"],
        ["attempts_since_correct>=8"],
        ["wrong_streak>=3", "rolling_accuracy<0.4 after>=4 attempts"],
    ]
    assert out["interventions"].tolist() == [
        [],
        [Intervention.WORKED_EXAMPLE.value],
        [Intervention.REVIEW_PREREQUISITE.value],
        [Intervention.TUTOR_CHECK_IN.value],
        [Intervention.WORKED_EXAMPLE.value, Intervention.REVIEW_PREREQUISITE.value],
    ]


def test_boundaries_follow_the_written_rules() -> None:
    frame = _rows(
        {"right_streak": 0, "wrong_streak": 2, "attempts_since_correct": 2},  # 2 wrong: no
        {
            "attempts": 3,
            "accuracy": 0.0,
            "rolling_accuracy": 0.0,
            "right_streak": 0,
            "wrong_streak": 2,
            "attempts_since_correct": 2,
        },  # < 4 attempts: accuracy rule silent
        {"rolling_accuracy": 0.4},  # not below 0.4
        {"right_streak": 0, "wrong_streak": 1, "attempts_since_correct": 7},
    )
    out = RuleModel().predict(frame)
    assert not out["struggling"].any()
    assert (out["struggle_probability"] <= 0.5).all()


def test_score_is_above_one_half_exactly_when_a_rule_fires_and_grows_with_evidence() -> None:
    streaks = _rows(
        *({"right_streak": 0, "wrong_streak": w, "attempts_since_correct": w} for w in range(6))
    )
    out = RuleModel().predict(streaks)
    scores = out["struggle_probability"].to_numpy()
    assert np.all(np.diff(scores) > 0)
    assert ((scores > 0.5) == out["struggling"].to_numpy()).all()


def test_rules_rank_held_out_rows_better_than_chance(trained) -> None:
    assert 0.75 < trained.metrics["rules_auc"] < trained.metrics["lr_auc"]
