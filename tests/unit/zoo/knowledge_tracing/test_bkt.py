"""Bayesian Knowledge Tracing: EM recovers its own parameters; predictions follow the HMM."""

from __future__ import annotations

import numpy as np
import pytest

from sibyl.errors import InvalidInputError
from sibyl.zoo.knowledge_tracing import evaluate_positions, marginal_baseline, simulate_5
from sibyl.zoo.knowledge_tracing.bkt import BKTParams, bkt_baseline, fit_bkt, sample_bkt


def _close(fitted: BKTParams, true: BKTParams, tol: float) -> None:
    for name in ("p_init", "p_learn", "p_guess", "p_slip"):
        assert abs(getattr(fitted, name) - getattr(true, name)) < tol, name


@pytest.mark.parametrize("true", [BKTParams(0.3, 0.15, 0.2, 0.1), BKTParams(0.6, 0.05, 0.3, 0.15)])
def test_em_recovers_the_parameters_of_bkt_data(true: BKTParams) -> None:
    exercises, correct = sample_bkt(true, n_students=3000, n_steps=30, seed=1)
    model = fit_bkt(exercises, correct, np.full(3000, 30))
    _close(model.params[0], true, tol=0.03)


def test_skills_are_fitted_separately_and_chains_interleave() -> None:
    a, b = BKTParams(0.2, 0.2, 0.25, 0.1), BKTParams(0.7, 0.05, 0.1, 0.2)
    _, ca = sample_bkt(a, 3000, 20, seed=2)
    _, cb = sample_bkt(b, 3000, 20, seed=3)
    # alternate the two skills' attempts: exercises 0 (skill 0) and 1 (skill 1)
    correct = np.empty((3000, 40), dtype=np.int8)
    correct[:, 0::2], correct[:, 1::2] = ca, cb
    exercises = np.tile([0, 1], (3000, 20))
    model = fit_bkt(exercises, correct, np.full(3000, 40), skill_of=np.array([0, 1]))
    _close(model.params[0], a, tol=0.04)
    _close(model.params[1], b, tol=0.04)


def test_padding_is_ignored_when_fitting_and_predicting() -> None:
    exercises, correct = sample_bkt(BKTParams(0.3, 0.15, 0.2, 0.1), 400, 12, seed=4)
    lengths = np.random.default_rng(5).integers(1, 13, size=400)
    junk = correct.copy()
    for i, n in enumerate(lengths):
        junk[i, n:] = 1 - junk[i, n:]
    first = fit_bkt(exercises, correct, lengths)
    second = fit_bkt(exercises, junk, lengths)
    assert first.params == second.params
    p1, p2 = first.predict(exercises, correct, lengths), second.predict(exercises, junk, lengths)
    np.testing.assert_array_equal(np.isnan(p1), np.arange(12)[None, :] >= lengths[:, None])
    np.testing.assert_allclose(p1, p2)


def test_prediction_follows_the_hmm_by_hand() -> None:
    true = BKTParams(0.3, 0.2, 0.25, 0.1)
    exercises, correct = sample_bkt(true, 2000, 10, seed=6)
    model = fit_bkt(exercises, correct, np.full(2000, 10))
    p = model.params[0]
    pred = model.predict(np.zeros((1, 2), dtype=np.int64), np.array([[1, 0]]), np.array([2]))
    first = p.p_init * (1 - p.p_slip) + (1 - p.p_init) * p.p_guess
    known = p.p_init * (1 - p.p_slip) / first
    known += (1 - known) * p.p_learn
    second = known * (1 - p.p_slip) + (1 - known) * p.p_guess
    np.testing.assert_allclose(pred[0], [first, second])


def test_one_skill_bkt_on_simulated_5_is_a_weak_baseline() -> None:
    dataset = simulate_5(1000, seed=0)
    auc = evaluate_positions(dataset, bkt_baseline(dataset))
    assert 0.55 < auc < 0.7  # it traces one overall ability, not the five hidden concepts
    concept = evaluate_positions(dataset, bkt_baseline(dataset, dataset.exercise_concept))
    assert concept > auc + 0.1 > evaluate_positions(dataset, marginal_baseline(dataset))


def test_ids_outside_the_skill_map_are_refused() -> None:
    with pytest.raises(InvalidInputError) as caught:
        fit_bkt(np.array([[0, 3]]), np.array([[1, 0]]), np.array([2]), skill_of=np.array([0, 0]))
    assert caught.value.field == "exercises"
