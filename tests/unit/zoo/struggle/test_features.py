"""Struggle examples: exact labels from the generator, the online computation, validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sibyl.errors import InvalidInputError
from sibyl.zoo.knowledge_tracing.data import simulate_5
from sibyl.zoo.struggle.features import (
    FEATURES,
    LABEL,
    check_features,
    examples,
    history_features,
)


@pytest.fixture(scope="module")
def small() -> tuple[object, pd.DataFrame]:
    dataset = simulate_5(n_students=40, n_exercises=30, n_concepts=3, seed=3)
    return dataset, examples(dataset)


def test_labels_are_the_true_probability_of_the_next_exercise_of_the_concept(small) -> None:
    dataset, rows = small
    concepts = dataset.exercise_concept[dataset.exercises]
    for row in rows.sample(200, random_state=0).itertuples():
        i, t, k = row.student, row.position, row.concept
        later = [u for u in range(t + 1, concepts.shape[1]) if concepts[i, u] == k]
        assert later, "an attempt without a later one on its concept gave an example"
        assert row.next_p == dataset.true_p[i, later[0]]
        assert getattr(row, LABEL) == (dataset.true_p[i, later[0]] < 0.5)


def test_every_attempt_with_a_later_one_on_its_concept_gives_one_example(small) -> None:
    dataset, rows = small
    concepts = dataset.exercise_concept[dataset.exercises]
    expected = sum(
        1
        for i in range(concepts.shape[0])
        for t in range(concepts.shape[1])
        if (concepts[i, t + 1 :] == concepts[i, t]).any()
    )
    assert len(rows) == expected
    assert rows[LABEL].dtype == bool and 0.2 < rows[LABEL].mean() < 0.8


def test_online_features_equal_the_batch_ones(small) -> None:
    dataset, rows = small
    concepts = dataset.exercise_concept[dataset.exercises]
    for student, t in [(0, 5), (7, 17), (21, 28)]:
        online = history_features(concepts[student, : t + 1], dataset.correct[student, : t + 1])
        k = int(concepts[student, t])
        batch = rows[(rows.student == student) & (rows.position == t)]
        if batch.empty:  # last attempt on the concept: no example to compare with
            continue
        np.testing.assert_allclose(
            online.loc[k, list(FEATURES)].to_numpy(dtype=float),
            batch[list(FEATURES)].to_numpy(dtype=float)[0],
        )


def test_history_features_by_hand() -> None:
    out = history_features([0, 0, 1, 0, 0, 0, 1], [1, 0, 0, 0, 0, 1, 0])
    assert out.loc[0].to_dict() == {
        "attempts": 5,
        "accuracy": 0.4,
        "rolling_accuracy": 0.4,
        "right_streak": 1,
        "wrong_streak": 0,
        "attempts_since_correct": 1,
    }
    assert out.loc[1, "wrong_streak"] == 2 and out.loc[1, "accuracy"] == 0.0


def _row(**changes: float) -> pd.DataFrame:
    base = {
        "attempts": 5,
        "accuracy": 0.4,
        "rolling_accuracy": 0.4,
        "right_streak": 0,
        "wrong_streak": 2,
        "attempts_since_correct": 2,
    }
    return pd.DataFrame([{**base, **changes}])


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        (_row().drop(columns="wrong_streak"), "wrong_streak"),
        (_row(attempts=-1), "attempts"),
        (_row(attempts=2.5), "attempts"),
        (_row(accuracy=1.5), "accuracy"),
        (_row(rolling_accuracy=float("nan")), "rolling_accuracy"),
        (_row(right_streak=1), "wrong_streak"),
        (_row(wrong_streak=9), "wrong_streak"),
        (_row().astype({"accuracy": object}).assign(accuracy="high"), "accuracy"),
        ([{"attempts": 1}], "features"),
    ],
)
def test_bad_features_name_the_field(frame: object, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_features(frame)
    assert info.value.field == field


def test_bad_histories_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="length"):
        history_features([0, 1], [1])
    with pytest.raises(InvalidInputError, match="0 and 1"):
        history_features([0, 1], [1, 2])


def test_importing_the_package_does_not_import_mlflow() -> None:
    import subprocess
    import sys

    code = "import sys, sibyl.zoo.struggle; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
