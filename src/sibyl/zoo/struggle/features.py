"""Struggle examples from "Simulated-5": observable features per (student, concept, time), and
the exact label from the generator.

After every attempt of a student, the concept just practised gets one example:

* ``attempts`` — attempts so far on the concept (this one included);
* ``accuracy`` — share of them answered right;
* ``rolling_accuracy`` — share right over the last ``ROLLING_WINDOW`` (5) attempts on it
  (over all of them while there are fewer);
* ``right_streak`` / ``wrong_streak`` — current run of right / wrong answers on it (one is 0);
* ``attempts_since_correct`` — the student's attempts on *any* concept since their last right
  answer on any concept (all their attempts if none was right). Counted per concept it would
  equal ``wrong_streak``; student-wide it says how long the student has gone without success.

Label ``struggling``: the generator's true ``P(correct)`` on the student's next exercise of that
concept is below ``STRUGGLE_THRESHOLD`` (0.5). ``true_p`` is the probability that answer is drawn
with (α after every earlier update, that exercise's β, the guess rate), so the label is exact;
attempts with no later exercise of their concept give no example.

Assumption: a concept is an observable skill tag of each exercise (as in real tutoring systems),
so features can be grouped by concept; the student's skill ``α`` and the difficulties ``β`` stay
hidden from every model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from sibyl.errors import InvalidInputError
from sibyl.zoo.knowledge_tracing.data import KTDataset

FEATURES: tuple[str, ...] = (
    "attempts",
    "accuracy",
    "rolling_accuracy",
    "right_streak",
    "wrong_streak",
    "attempts_since_correct",
)
"""The model input columns, in signature order."""
COUNT_FEATURES: tuple[str, ...] = (
    "attempts",
    "right_streak",
    "wrong_streak",
    "attempts_since_correct",
)
"""Non-negative integer columns (MLflow ``long``); the others are shares in [0, 1]."""
SHARE_FEATURES: tuple[str, ...] = ("accuracy", "rolling_accuracy")
ROLLING_WINDOW = 5
STRUGGLE_THRESHOLD = 0.5
LABEL = "struggling"
"""Label column of :func:`examples` (bool)."""

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def examples(dataset: KTDataset) -> pd.DataFrame:
    """One row per (student, attempt) whose concept comes again later, in time-major order.

    Columns: :data:`FEATURES`, ``struggling`` (the label), and for analysis only (never model
    inputs) ``student``, ``position``, ``concept``, ``next_exercise``, ``next_p`` (true
    ``P(correct)`` there) and ``next_difficulty`` (its β).
    """
    concepts = dataset.exercise_concept[dataset.exercises]
    following = _next_same_concept(concepts)
    state = _State(dataset.n_students, int(dataset.exercise_concept.max(initial=0)) + 1)
    rows = np.arange(dataset.n_students)
    parts: list[pd.DataFrame] = []
    for t in range(concepts.shape[1]):
        values = state.update(concepts[:, t], dataset.correct[:, t].astype(np.int64))
        keep = following[:, t] >= 0
        if not keep.any():
            continue
        nxt = following[keep, t]
        next_exercise = dataset.exercises[keep, nxt]
        next_p = dataset.true_p[keep, nxt]
        frame = pd.DataFrame({name: values[name][keep] for name in FEATURES})
        frame[LABEL] = next_p < STRUGGLE_THRESHOLD
        frame["student"] = rows[keep]
        frame["position"] = t
        frame["concept"] = concepts[keep, t]
        frame["next_exercise"] = next_exercise
        frame["next_p"] = next_p
        frame["next_difficulty"] = dataset.beta[next_exercise]
        parts.append(frame)
    if not parts:
        raise InvalidInputError("no attempt has a later attempt on its concept", field="dataset")
    return pd.concat(parts, ignore_index=True)


def _next_same_concept(concepts: IntArray) -> IntArray:
    """``out[i, t]``: the next position after ``t`` with the same concept for student ``i``
    (-1 when there is none)."""
    n, steps = concepts.shape
    out = np.full((n, steps), -1, dtype=np.int64)
    last: dict[int, IntArray] = {}
    for t in range(steps - 1, -1, -1):
        column = concepts[:, t]
        for k in np.unique(column).tolist():
            seen = last.setdefault(k, np.full(n, -1, dtype=np.int64))
            mask = column == k
            out[mask, t] = seen[mask]
            seen[mask] = t
    return out


class _State:
    """Per (student, concept) counters, updated one time step (all students) at a time."""

    def __init__(self, n_students: int, n_concepts: int) -> None:
        shape = (n_students, n_concepts)
        self.rows = np.arange(n_students)
        self.attempts = np.zeros(shape, dtype=np.int64)
        self.rights = np.zeros(shape, dtype=np.int64)
        self.right_streak = np.zeros(shape, dtype=np.int64)
        self.wrong_streak = np.zeros(shape, dtype=np.int64)
        self.window = np.zeros((*shape, ROLLING_WINDOW), dtype=np.int64)
        self.since_correct = np.zeros(n_students, dtype=np.int64)

    def update(self, concept: IntArray, correct: IntArray) -> dict[str, Any]:
        """Record one attempt per student; the features of the concept just practised."""
        r, k, right = self.rows, concept, correct == 1
        self.window[r, k, self.attempts[r, k] % ROLLING_WINDOW] = correct
        self.attempts[r, k] += 1
        self.rights[r, k] += correct
        self.right_streak[r, k] = np.where(right, self.right_streak[r, k] + 1, 0)
        self.wrong_streak[r, k] = np.where(right, 0, self.wrong_streak[r, k] + 1)
        self.since_correct = np.where(right, 0, self.since_correct + 1)
        attempts = self.attempts[r, k]
        in_window = np.minimum(attempts, ROLLING_WINDOW)
        return {
            "attempts": attempts.copy(),
            "accuracy": self.rights[r, k] / attempts,
            "rolling_accuracy": self.window[r, k].sum(axis=1) / in_window,
            "right_streak": self.right_streak[r, k].copy(),
            "wrong_streak": self.wrong_streak[r, k].copy(),
            "attempts_since_correct": self.since_correct.copy(),
        }


def history_features(concepts: Sequence[int], correct: Sequence[int]) -> pd.DataFrame:
    """The online computation for one student: features of every concept they practised, as of
    after their last attempt (index: concept id, columns :data:`FEATURES`).

    What a serving caller computes from a student's (skill tag, right/wrong) history; equal to
    :func:`examples` at the same point (counts int64, shares float64). Raises
    :class:`InvalidInputError` for sequences of different lengths or answers other than 0/1.
    """
    if len(concepts) != len(correct):
        raise InvalidInputError(
            f"concepts and correct differ in length ({len(concepts)} vs {len(correct)})",
            field="correct",
        )
    if any(c not in (0, 1) for c in correct):
        raise InvalidInputError("correct must hold only 0 and 1", field="correct")
    history: dict[int, list[int]] = {}
    since = 0
    for concept, answer in zip(concepts, correct, strict=True):
        history.setdefault(int(concept), []).append(int(answer))
        since = 0 if answer == 1 else since + 1
    rows = {k: _concept_row(answers, since) for k, answers in history.items()}
    return typed(pd.DataFrame.from_dict(rows, orient="index", columns=list(FEATURES)))


def _concept_row(answers: list[int], since_correct: int) -> list[float]:
    recent = answers[-ROLLING_WINDOW:]
    return [
        len(answers),
        sum(answers) / len(answers),
        sum(recent) / len(recent),
        _run(answers, 1),
        _run(answers, 0),
        since_correct,
    ]


def _run(answers: list[int], value: int) -> int:
    """Length of the run of ``value`` at the end of ``answers``."""
    n = 0
    for answer in reversed(answers):
        if answer != value:
            break
        n += 1
    return n


def check_features(frame: Any, field: str = "features") -> pd.DataFrame:
    """``frame``'s :data:`FEATURES` as float64 columns, validated.

    Raises :class:`InvalidInputError` naming the column for: not a DataFrame, a missing column,
    a non-numeric, NaN or infinite value, a negative or fractional count, a share outside
    [0, 1], a streak longer than ``attempts``, or both streaks positive in one row.
    """
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError(
            f"{field} must be a DataFrame, got {type(frame).__name__}", field=field
        )
    missing = [c for c in FEATURES if c not in frame.columns]
    if missing:
        raise InvalidInputError(
            f"{field} lacks column(s) {missing}; the model takes {list(FEATURES)}", field=missing[0]
        )
    values = _numeric_matrix(frame)
    _check_ranges(values)
    return pd.DataFrame(values, columns=list(FEATURES), index=frame.index)


def typed(checked: pd.DataFrame) -> pd.DataFrame:
    """Validated features with the signature's dtypes: counts int64, shares float64."""
    return checked[list(FEATURES)].astype(
        {c: "int64" if c in COUNT_FEATURES else "float64" for c in FEATURES}
    )


_COL = {name: j for j, name in enumerate(FEATURES)}


def _numeric_matrix(frame: pd.DataFrame) -> FloatArray:
    """``FEATURES`` as one float64 matrix (one conversion for the whole frame; the per-column
    path only runs to name the culprit when that fails)."""
    try:
        values = frame[list(FEATURES)].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        values = np.column_stack([_numeric(frame[c], c) for c in FEATURES])
    bad = ~np.isfinite(values)
    if bad.any():
        name = FEATURES[int(np.nonzero(bad.any(axis=0))[0][0])]
        raise InvalidInputError(f"column '{name}' has NaN or infinite values", field=name)
    return values


def _numeric(column: pd.Series[Any], name: str) -> FloatArray:
    try:
        return pd.to_numeric(column, errors="raise").to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"column '{name}' must be numeric ({exc})", field=name) from exc


def _check_ranges(values: FloatArray) -> None:
    for name in COUNT_FEATURES:
        col = values[:, _COL[name]]
        if (col < 0).any() or (col != np.round(col)).any():
            raise InvalidInputError(f"column '{name}' must hold counts >= 0", field=name)
    for name in SHARE_FEATURES:
        col = values[:, _COL[name]]
        if ((col < 0) | (col > 1)).any():
            raise InvalidInputError(f"column '{name}' must be a share in [0, 1]", field=name)
    attempts = values[:, _COL["attempts"]]
    right, wrong = values[:, _COL["right_streak"]], values[:, _COL["wrong_streak"]]
    for name, streak in (("right_streak", right), ("wrong_streak", wrong)):
        if (streak > attempts).any():
            raise InvalidInputError(f"column '{name}' exceeds 'attempts' in a row", field=name)
    if ((right > 0) & (wrong > 0)).any():
        raise InvalidInputError(
            "a row has both a right and a wrong streak; one of them must be 0", field="wrong_streak"
        )
