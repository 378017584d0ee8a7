"""Student insights from a mastery vector: weakest skills and productive-band suggestions."""

from __future__ import annotations

import pytest

from sibyl.errors import InvalidInputError
from sibyl.zoo.knowledge_tracing.insights import (
    SkillMastery,
    Suggestion,
    skill_mastery,
    student_insights,
    suggest_next,
    weakest_skills,
)

MASTERY = [0.85, 0.2, 0.55, 0.45, 0.1, 0.68, 0.95, 0.2]


def test_weakest_skills_are_the_lowest_lowest_first_ties_by_id() -> None:
    assert weakest_skills(MASTERY, k=3) == (
        SkillMastery(4, 0.1),
        SkillMastery(1, 0.2),
        SkillMastery(7, 0.2),
    )


def test_weakest_skills_by_skill_map_average_their_exercises() -> None:
    skills = [0, 1, 0, 1, 2, 2, 0, 1]
    assert skill_mastery(MASTERY, skills).tolist() == pytest.approx([2.35 / 3, 0.85 / 3, 0.39])
    weakest = weakest_skills(MASTERY, k=2, skill_of=skills)
    assert [w.skill for w in weakest] == [1, 2]


def test_suggestions_come_from_the_band_closest_to_its_middle_first() -> None:
    assert suggest_next(MASTERY, k=3) == (
        Suggestion(2, 0.55, True),
        Suggestion(3, 0.45, True),
        Suggestion(5, 0.68, True),
    )


def test_suggestions_are_filled_from_nearest_outside_the_band() -> None:
    got = suggest_next(MASTERY, k=5, exclude={2})
    assert [s.exercise for s in got] == [3, 5, 0, 1, 7]  # 0 is 0.15 off the band
    assert [s.in_band for s in got] == [True, True, False, False, False]


def test_a_narrow_band_and_exclusions_are_respected() -> None:
    got = suggest_next(MASTERY, k=1, band=(0.6, 0.7), exclude={5})
    assert got == (Suggestion(2, 0.55, False),)


def test_student_insights_bundle_both() -> None:
    insights = student_insights(MASTERY, k=2)
    assert insights.weakest == weakest_skills(MASTERY, 2)
    assert insights.suggested == suggest_next(MASTERY, 2)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: weakest_skills([0.5, 1.2]), "mastery"),
        (lambda: weakest_skills([[0.5]]), "mastery"),
        (lambda: weakest_skills([]), "mastery"),
        (lambda: weakest_skills([0.5], k=0), "k"),
        (lambda: suggest_next([0.5, float("nan")]), "mastery"),
        (lambda: suggest_next([0.5], band=(0.8, 0.2)), "band"),
        (lambda: skill_mastery([0.5, 0.4], [0]), "skill_of"),
    ],
)
def test_bad_input_names_the_field(call: object, field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        call()  # type: ignore[operator]
    assert caught.value.field == field


def test_served_insight_outputs_follow_the_same_rules() -> None:
    """The ``weakest`` / ``suggested`` outputs of the served modules equal the pure functions'
    answers on random mastery vectors (in-band and out-of-band alike)."""
    import numpy as np
    import torch

    from sibyl.zoo.knowledge_tracing.models import insight_indices

    rng = np.random.default_rng(0)
    vectors = rng.random((200, 50)).astype(np.float32)
    vectors[:50] = rng.uniform(0.8, 1.0, (50, 50))  # nothing in the band: nearest out of it
    weakest, suggested = insight_indices(torch.from_numpy(vectors), k=3)
    for row, w, s in zip(vectors.astype(np.float64), weakest.tolist(), suggested.tolist(),
                         strict=True):
        insights = student_insights(row, k=3)
        assert w == [m.skill for m in insights.weakest]
        assert s == [g.exercise for g in insights.suggested]
