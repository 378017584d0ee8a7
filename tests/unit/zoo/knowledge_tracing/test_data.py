"""Simulated-5 generator, the position-AUC protocol and the two baselines (USE-CASES.md §1)."""

from __future__ import annotations

import numpy as np
import pytest

from sibyl.errors import InvalidInputError
from sibyl.zoo.knowledge_tracing import (
    KTDataset,
    evaluate_positions,
    marginal_baseline,
    oracle,
    simulate_5,
    variable_length,
)


@pytest.fixture(scope="module")
def sim5() -> KTDataset:
    return simulate_5(seed=0)


def test_shapes_and_dtypes(sim5: KTDataset) -> None:
    assert sim5.exercises.shape == sim5.correct.shape == sim5.true_p.shape == (4000, 50)
    assert sim5.exercise_concept.shape == sim5.beta.shape == (50,)
    assert sim5.correct.dtype == np.int8 and set(np.unique(sim5.correct)) == {0, 1}
    assert sim5.exercise_concept.min() >= 0 and sim5.exercise_concept.max() <= 4
    assert np.all((sim5.true_p > 0.1) & (sim5.true_p < 1.0))


def test_everyone_answers_all_exercises_in_the_same_order(sim5: KTDataset) -> None:
    assert np.all(sim5.exercises == np.arange(50))


def test_train_test_split_is_first_half_second_half(sim5: KTDataset) -> None:
    train, test = sim5.train(), sim5.test()
    assert train.correct.shape == test.correct.shape == (2000, 50)
    np.testing.assert_array_equal(train.correct, sim5.correct[:2000])
    np.testing.assert_array_equal(test.correct, sim5.correct[2000:])


def test_deterministic_by_seed() -> None:
    a, b, c = simulate_5(200, seed=7), simulate_5(200, seed=7), simulate_5(200, seed=8)
    np.testing.assert_array_equal(a.correct, b.correct)
    np.testing.assert_array_equal(a.true_p, b.true_p)
    assert not np.array_equal(a.correct, c.correct)


def test_alpha_update_rule_is_exact() -> None:
    # logit((p − c)/(1 − c)) = α_k + 0.1·(attempts so far) − β_j; with one concept, the
    # attempts so far are the position, so adding β back leaves steps of exactly 0.1.
    d = simulate_5(500, n_exercises=50, n_concepts=1, seed=1)
    logit = np.log(d.true_p - 0.1) - np.log(1.0 - d.true_p)
    steps = np.diff(logit + d.beta[d.exercises], axis=1)
    np.testing.assert_allclose(steps, 0.1, atol=1e-6)


def test_mean_correctness_rises_along_the_sequence() -> None:
    # Averaged over seeds, difficulty does not depend on position, so only learning remains.
    first, last = [], []
    for seed in range(20):
        d = simulate_5(1000, n_exercises=50, n_concepts=1, seed=seed)
        first.append(d.correct[:, :10].mean())
        last.append(d.correct[:, -10:].mean())
    assert np.mean(last) > np.mean(first) + 0.1


def test_reference_aucs(sim5: KTDataset) -> None:
    auc_oracle = evaluate_positions(sim5, oracle(sim5))
    auc_marginal = evaluate_positions(sim5, marginal_baseline(sim5))
    auc_true_p = evaluate_positions(sim5, sim5.test().true_p)
    assert 0.81 <= auc_oracle <= 0.85
    assert 0.58 <= auc_marginal <= 0.66
    assert auc_marginal < auc_oracle < auc_true_p


def test_baselines_have_the_test_shape_and_are_probabilities(sim5: KTDataset) -> None:
    for pred in (oracle(sim5), marginal_baseline(sim5)):
        assert pred.shape == (2000, 50)
        assert np.all((pred >= 0) & (pred <= 1))


def test_marginal_is_the_train_mean_per_exercise(sim5: KTDataset) -> None:
    np.testing.assert_allclose(marginal_baseline(sim5)[0], sim5.train().correct.mean(axis=0))


def test_evaluate_ignores_the_first_position(sim5: KTDataset) -> None:
    pred = oracle(sim5)
    scrambled = pred.copy()
    scrambled[:, 0] = np.random.default_rng(0).random(2000)
    assert evaluate_positions(sim5, pred) == evaluate_positions(sim5, scrambled)


def test_evaluate_rejects_a_wrong_shape(sim5: KTDataset) -> None:
    with pytest.raises(InvalidInputError, match="shape"):
        evaluate_positions(sim5, sim5.true_p)


def test_evaluate_rejects_nan(sim5: KTDataset) -> None:
    pred = oracle(sim5)
    pred[3, 4] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        evaluate_positions(sim5, pred)


def test_bad_sizes_are_rejected() -> None:
    with pytest.raises(InvalidInputError, match="n_concepts"):
        simulate_5(10, n_concepts=0)
    with pytest.raises(InvalidInputError, match="min_len"):
        variable_length(10, min_len=20, max_len=10)


def test_variable_length_lengths_and_orders() -> None:
    seqs = variable_length(n_students=500, min_len=10, max_len=200, seed=3)
    lengths = np.array([len(s.exercises) for s in seqs])
    assert len(seqs) == 500
    assert lengths.min() >= 10 and lengths.max() <= 200 and len(set(lengths.tolist())) > 50
    for s in seqs:
        assert s.exercises.shape == s.correct.shape
        assert s.exercises.min() >= 0 and s.exercises.max() < 50
        assert set(np.unique(s.correct)) <= {0, 1}
        first = s.exercises[:50]
        assert len(set(first.tolist())) == len(first)  # no repeat before all 50 are seen
    firsts = {tuple(s.exercises[:10].tolist()) for s in seqs}
    assert len(firsts) == 500  # every student has their own order
    assert any(len(s.exercises) > 50 for s in seqs)


def test_variable_length_is_deterministic_by_seed() -> None:
    a, b = variable_length(50, seed=1), variable_length(50, seed=1)
    c = variable_length(50, seed=2)
    assert all(np.array_equal(x.exercises, y.exercises) and np.array_equal(x.correct, y.correct)
               for x, y in zip(a, b, strict=True))
    assert any(not np.array_equal(x.exercises, y.exercises) for x, y in zip(a, c, strict=True))
