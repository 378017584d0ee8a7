"""What a teacher or a tutoring app reads from one student's mastery vector (pure functions).

A mastery vector is what the served knowledge-tracing models return: ``mastery[j]`` =
P(the student answers exercise ``j`` right next), after their whole history. A *skill* is an
exercise by default; with ``skill_of`` (exercise → skill id) a skill's mastery is the mean over
its exercises.

* **Weakest skills**: the ``k`` lowest mastery values, lowest first.
* **Suggested next exercises** (the "productive band" rule): practise where success is likely
  but not certain. Exercises whose predicted P(right) lies within ``band`` (default 0.4–0.7)
  are ranked by their distance to the band's middle, closest first (ties: lower id); already
  mastered (above the band) and out-of-reach (below it) exercises are left out. If fewer than
  ``k`` exercises are in the band, the rest are the out-of-band exercises nearest to it, so a
  student always gets ``k`` suggestions (``in_band`` tells which are which). Exercises in
  ``exclude`` (e.g. just answered) are never suggested.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sibyl.errors import InvalidInputError
from sibyl.zoo.knowledge_tracing.data import FloatArray

PRODUCTIVE_BAND = (0.4, 0.7)
"""Default mastery band of suggested exercises: likely but not certain success."""


@dataclass(frozen=True, slots=True)
class SkillMastery:
    """One skill (or exercise) id with the student's mastery of it."""

    skill: int
    mastery: float


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A suggested exercise, its predicted P(right) and whether it lies in the band."""

    exercise: int
    p_correct: float
    in_band: bool


@dataclass(frozen=True, slots=True)
class StudentInsights:
    """The weakest skills (lowest first) and the suggested next exercises (best first)."""

    weakest: tuple[SkillMastery, ...]
    suggested: tuple[Suggestion, ...]


def _vector(mastery: npt.ArrayLike) -> FloatArray:
    values = np.asarray(mastery, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise InvalidInputError(
            f"mastery must be a non-empty 1-D vector, got shape {values.shape}", field="mastery"
        )
    if not np.all(np.isfinite(values)) or values.min() < 0.0 or values.max() > 1.0:
        raise InvalidInputError("mastery values must be probabilities in [0, 1]", field="mastery")
    return values


def _check_k(k: int) -> None:
    if k < 1:
        raise InvalidInputError(f"k must be at least 1, got {k}", field="k")


def skill_mastery(mastery: npt.ArrayLike, skill_of: Sequence[int] | None = None) -> FloatArray:
    """Mastery per skill: ``mastery`` itself, or the mean over each skill's exercises when
    ``skill_of`` (one skill id ≥ 0 per exercise) is given; a skill with no exercise is NaN."""
    values = _vector(mastery)
    if skill_of is None:
        return values
    skills = np.asarray(skill_of, dtype=np.int64)
    if skills.shape != values.shape or (skills.size and skills.min() < 0):
        raise InvalidInputError(
            f"skill_of must hold one skill id >= 0 per exercise ({values.size})", field="skill_of"
        )
    counts = np.bincount(skills)
    sums = np.bincount(skills, weights=values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(sums / counts, dtype=np.float64)


def weakest_skills(
    mastery: npt.ArrayLike, k: int = 3, skill_of: Sequence[int] | None = None
) -> tuple[SkillMastery, ...]:
    """The ``k`` skills with the lowest mastery, lowest first (ties: lower id)."""
    _check_k(k)
    per_skill = skill_mastery(mastery, skill_of)
    ids = np.flatnonzero(np.isfinite(per_skill))
    order = ids[np.lexsort((ids, per_skill[ids]))][:k]
    return tuple(SkillMastery(int(j), float(per_skill[j])) for j in order)


def suggest_next(
    mastery: npt.ArrayLike,
    k: int = 3,
    band: tuple[float, float] = PRODUCTIVE_BAND,
    exclude: Collection[int] = (),
) -> tuple[Suggestion, ...]:
    """Up to ``k`` next exercises by the productive-band rule of the module docstring."""
    _check_k(k)
    low, high = band
    if not 0.0 <= low <= high <= 1.0:
        raise InvalidInputError(
            f"band must satisfy 0 <= low <= high <= 1, got {band}", field="band"
        )
    values = _vector(mastery)
    excluded = set(exclude)
    ids = np.array([j for j in range(values.size) if j not in excluded], dtype=np.int64)
    p = values[ids]
    in_band = (p >= low) & (p <= high)
    outside = np.maximum(low - p, p - high).clip(min=0.0)
    to_middle = np.abs(p - (low + high) / 2.0)
    order = np.lexsort((ids, to_middle, outside, ~in_band))[:k]
    return tuple(Suggestion(int(ids[i]), float(p[i]), bool(in_band[i])) for i in order)


def student_insights(
    mastery: npt.ArrayLike,
    k: int = 3,
    band: tuple[float, float] = PRODUCTIVE_BAND,
    exclude: Collection[int] = (),
    skill_of: Sequence[int] | None = None,
) -> StudentInsights:
    """Both insights for one student's mastery vector."""
    return StudentInsights(
        weakest_skills(mastery, k, skill_of), suggest_next(mastery, k, band, exclude)
    )
