"""The incremental logistic regression: bars on held-out students, learning from feedback on a
shifted distribution, and interventions that follow its top contributing features."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss

from sibyl.errors import InvalidInputError
from sibyl.zoo.struggle.features import FEATURES, LABEL
from sibyl.zoo.struggle.interventions import FEATURE_INTERVENTIONS, OUTPUTS, Intervention
from sibyl.zoo.struggle.metrics import expected_calibration_error, scores
from sibyl.zoo.struggle.model import SIGNS, StruggleModel
from sibyl.zoo.struggle.train import generate
from tests.unit.zoo.struggle._records import FAILING


def test_lr_beats_the_rules_and_is_calibrated(trained) -> None:
    m = trained.metrics
    print(f"struggle small: {m}")
    assert m["lr_auc"] > m["rules_auc"] + 0.03
    assert m["lr_brier"] < m["rules_brier"]
    assert m["lr_ece"] < 0.04
    assert m["lr_auc"] > 0.88


def test_coefficients_keep_their_allowed_signs(trained) -> None:
    coef = trained.model.coefficients()
    for name, sign in SIGNS.items():
        assert coef[name] * sign >= 0, name
    assert coef["accuracy"] < 0  # the main driver: more right answers, less struggle


@pytest.fixture(scope="module")
def hard_items() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A shifted distribution: other students (seed 1) facing only hard next items (β > 0.5),
    where the model trained on all items underestimates struggle."""
    feedback, held_out = generate(1000, seed=1)
    return feedback[feedback.next_difficulty > 0.5], held_out[held_out.next_difficulty > 0.5]


def test_partial_fit_on_feedback_adapts_to_a_shifted_distribution(trained, hard_items) -> None:
    feedback_pool, held_out = hard_items
    before = trained.model
    after = copy.deepcopy(before)
    feedback = feedback_pool.sample(1000, random_state=0)
    after.partial_fit(feedback, feedback[LABEL])
    y = held_out[LABEL].to_numpy()
    p_before, p_after = before.predict_proba(held_out), after.predict_proba(held_out)
    s_before, s_after = scores(y, p_before), scores(y, p_after)
    print(f"hard items before {s_before} after {s_after}")
    assert s_after["brier"] < s_before["brier"] - 0.005
    assert log_loss(y, p_after) < log_loss(y, p_before)
    assert s_after["ece"] < s_before["ece"]
    assert after.n_seen == before.n_seen + 1000
    for name, sign in SIGNS.items():
        assert after.coefficients()[name] * sign >= 0


def test_interventions_come_from_the_top_positive_contributions(trained) -> None:
    rows = trained.test.sample(400, random_state=0)
    model = trained.model
    out = model.predict(rows)
    assert tuple(out.columns) == OUTPUTS and len(out) == len(rows)
    assert (out["struggling"] == (out["struggle_probability"] >= 0.5)).all()
    pushes = model.contributions(rows)
    for i, (_, row) in enumerate(out.iterrows()):
        positive = [FEATURES[j] for j in np.argsort(-pushes[i], kind="stable") if pushes[i, j] > 0]
        top = positive[:2]
        assert [r.split("=")[0] for r in row["reasons"]] == top
        expected = [FEATURE_INTERVENTIONS[f].value for f in top] if row["struggling"] else []
        assert row["interventions"] == expected
    assert out["struggling"].any() and not out["struggling"].all()


def test_a_student_failing_a_concept_gets_reteaching(trained) -> None:
    row = pd.DataFrame([FAILING])
    out = trained.model.predict(row).iloc[0]
    assert out["struggling"] and out["struggle_probability"] > 0.9
    assert out["reasons"][0].startswith("accuracy=0.125")
    assert Intervention.RETEACH.value in out["interventions"]


def test_ece_by_hand() -> None:
    y = np.array([0, 1, 1, 0])
    p = np.array([0.05, 0.15, 0.95, 0.85])
    # bin 0: p 0.05, y 0; bin 1: p 0.15, y 1; bin 8: p 0.85, y 0; bin 9: p 0.95, y 1
    assert expected_calibration_error(y, p) == pytest.approx((0.05 + 0.85 + 0.85 + 0.05) / 4)


def test_partial_fit_on_an_unfitted_model_fits_it(trained) -> None:
    rows = trained.train.head(2000)
    model = StruggleModel().partial_fit(rows, rows[LABEL])
    assert model.n_seen == 2000
    assert model.predict_proba(rows).shape == (2000,)


def test_bad_labels_and_unfitted_models_are_refused(trained) -> None:
    rows = trained.train.head(10)
    with pytest.raises(InvalidInputError) as info:
        copy.deepcopy(trained.model).partial_fit(rows, [1, 0])
    assert info.value.field == "labels"
    with pytest.raises(InvalidInputError) as info:
        copy.deepcopy(trained.model).partial_fit(rows, [2] * 10)
    assert info.value.field == "labels"
    with pytest.raises(InvalidInputError) as info:
        StruggleModel().predict(rows)
    assert info.value.field == "model"


def test_empty_batches(trained) -> None:
    empty = trained.test.head(0)
    out = trained.model.predict(empty)
    assert tuple(out.columns) == OUTPUTS and len(out) == 0
    with pytest.raises(InvalidInputError) as info:
        copy.deepcopy(trained.model).partial_fit(empty, [])
    assert info.value.field == "features"
