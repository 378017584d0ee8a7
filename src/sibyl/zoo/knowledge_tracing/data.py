"""Synthetic knowledge-tracing data ("Simulated-5"), the paper's protocol and two baselines.

The generator follows USE-CASES.md §1: ``n_exercises`` exercises, each tied to one of
``n_concepts`` hidden concepts drawn uniformly at random; difficulty ``β_j ~ N(0, 1)``; each
student's skill per concept ``α_k ~ N(0, 3²)``; ``P(correct) = c + (1 − c)·sigmoid(α_k − β_j)``
with guess ``c = 0.1``; after every attempt on concept ``k`` (right or wrong) ``α_k += 0.1``.

Everything here is pure numpy and deterministic given ``seed``; no function keeps state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score

from sibyl.errors import InvalidInputError

IntArray = npt.NDArray[np.int64]
BinArray = npt.NDArray[np.int8]
FloatArray = npt.NDArray[np.float64]

GUESS = 0.1
"""Probability of answering right by guessing (``c`` in the generator)."""
LEARNING_STEP = 0.1
"""Skill gained on a concept after every attempt on it (right or wrong)."""
ALPHA_SD = 3.0
"""Standard deviation of each student's initial skill per concept."""


class StudentSequence(NamedTuple):
    """One student's attempts in order: exercise ids (int64) and 0/1 answers (int8)."""

    exercises: IntArray
    correct: BinArray


@dataclass(frozen=True)
class KTDataset:
    """A fixed-order knowledge-tracing data set; row ``i`` is student ``i``.

    ``exercises``, ``correct`` and ``true_p`` are ``(n_students, T)``; ``true_p`` is the
    probability each answer was drawn with, so the oracle's predictions are ``true_p``.
    ``exercise_concept`` and ``beta`` are ``(n_exercises,)``. The first half of the rows is the
    training set, the second half the test set (:meth:`train`, :meth:`test`).
    """

    exercises: IntArray
    correct: BinArray
    true_p: FloatArray
    exercise_concept: IntArray
    beta: FloatArray

    @property
    def n_students(self) -> int:
        """Number of rows (students)."""
        return int(self.correct.shape[0])

    @property
    def n_train(self) -> int:
        """Rows ``0 .. n_train - 1`` are training students (2,000 of the 4,000 default)."""
        return self.n_students // 2

    def _rows(self, rows: slice) -> KTDataset:
        return KTDataset(
            self.exercises[rows],
            self.correct[rows],
            self.true_p[rows],
            self.exercise_concept,
            self.beta,
        )

    def train(self) -> KTDataset:
        """The first half of the students (views, no copy)."""
        return self._rows(slice(0, self.n_train))

    def test(self) -> KTDataset:
        """The second half of the students (views, no copy)."""
        return self._rows(slice(self.n_train, self.n_students))

    def sequences(self) -> list[StudentSequence]:
        """The rows as per-student sequences (the shape the file formats use)."""
        return [
            StudentSequence(e.copy(), c.copy())
            for e, c in zip(self.exercises, self.correct, strict=True)
        ]


def _sigmoid(x: FloatArray) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-x))


def _check_sizes(n_students: int, n_exercises: int, n_concepts: int) -> None:
    for name, value in (
        ("n_students", n_students),
        ("n_exercises", n_exercises),
        ("n_concepts", n_concepts),
    ):
        if value < 1:
            raise InvalidInputError(f"{name} must be at least 1, got {value}", field=name)


def _draw_parameters(
    rng: np.random.Generator, n_students: int, n_exercises: int, n_concepts: int
) -> tuple[IntArray, FloatArray, FloatArray]:
    concept = rng.integers(0, n_concepts, size=n_exercises).astype(np.int64)
    beta = rng.normal(0.0, 1.0, size=n_exercises)
    alpha = rng.normal(0.0, ALPHA_SD, size=(n_students, n_concepts))
    return concept, beta, alpha


def _answer(
    rng: np.random.Generator,
    exercises: IntArray,
    concept: IntArray,
    beta: FloatArray,
    alpha: FloatArray,
) -> tuple[BinArray, FloatArray]:
    """Answer ``exercises`` (students × T) column by column, updating ``alpha`` in place."""
    rows = np.arange(exercises.shape[0])
    true_p = np.empty(exercises.shape, dtype=np.float64)
    for t in range(exercises.shape[1]):
        j = exercises[:, t]
        k = concept[j]
        true_p[:, t] = GUESS + (1.0 - GUESS) * _sigmoid(alpha[rows, k] - beta[j])
        alpha[rows, k] += LEARNING_STEP
    correct = (rng.random(exercises.shape) < true_p).astype(np.int8)
    return correct, true_p


def simulate_5(
    n_students: int = 4000, n_exercises: int = 50, n_concepts: int = 5, seed: int = 0
) -> KTDataset:
    """Generate "Simulated-5": everyone answers exercises ``0 .. n_exercises - 1`` in order.

    Deterministic in ``seed``. Raises :class:`InvalidInputError` for a size below 1.
    """
    _check_sizes(n_students, n_exercises, n_concepts)
    rng = np.random.default_rng(seed)
    concept, beta, alpha = _draw_parameters(rng, n_students, n_exercises, n_concepts)
    exercises = np.tile(np.arange(n_exercises, dtype=np.int64), (n_students, 1))
    correct, true_p = _answer(rng, exercises, concept, beta, alpha)
    return KTDataset(exercises, correct, true_p, concept, beta)


def _shuffled_orders(
    rng: np.random.Generator, n_students: int, n_exercises: int, length: int
) -> IntArray:
    """Per row, concatenated random permutations cut to ``length``: repeats only past
    ``n_exercises``."""
    n_rounds = -(-length // n_exercises)
    tiled = np.tile(np.arange(n_exercises, dtype=np.int64), (n_students, n_rounds, 1))
    orders = rng.permuted(tiled, axis=2).reshape(n_students, n_rounds * n_exercises)
    return np.ascontiguousarray(orders[:, :length])


def variable_length(
    n_students: int = 4000,
    n_exercises: int = 50,
    n_concepts: int = 5,
    min_len: int = 10,
    max_len: int = 200,
    seed: int = 0,
) -> list[StudentSequence]:
    """The variable-length, shuffled-order variant of "Simulated-5".

    Each student answers ``L ~ Uniform{min_len .. max_len}`` exercises in their own random
    order; an exercise repeats only once all ``n_exercises`` have been seen (then in a fresh
    random order). The same answer model and ``α`` update as :func:`simulate_5` apply.
    Deterministic in ``seed``. Raises :class:`InvalidInputError` for bad sizes or bounds.
    """
    _check_sizes(n_students, n_exercises, n_concepts)
    if not 1 <= min_len <= max_len:
        raise InvalidInputError(
            f"need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}",
            field="min_len",
        )
    rng = np.random.default_rng(seed)
    concept, beta, alpha = _draw_parameters(rng, n_students, n_exercises, n_concepts)
    lengths = rng.integers(min_len, max_len + 1, size=n_students)
    exercises = _shuffled_orders(rng, n_students, n_exercises, max_len)
    # Answers past a student's length are simulated then dropped: they come after every kept
    # answer, so they cannot influence one.
    correct, _ = _answer(rng, exercises, concept, beta, alpha)
    return [
        StudentSequence(exercises[i, :n].copy(), correct[i, :n].copy())
        for i, n in enumerate(lengths.tolist())
    ]


def evaluate_positions(dataset: KTDataset, p_pred: npt.ArrayLike) -> float:
    """The paper's protocol: AUC pooled over positions 2…T of every test student.

    ``p_pred`` has the shape of ``dataset.test().correct``; its first column is ignored (the
    first answer has no history). Raises :class:`InvalidInputError` on a shape mismatch,
    non-finite predictions, or a test set whose scored answers are all one class.
    """
    truth = dataset.test().correct
    pred = np.asarray(p_pred, dtype=np.float64)
    if pred.shape != truth.shape:
        raise InvalidInputError(
            f"p_pred must have the test set's shape {truth.shape}, got {pred.shape}", field="p_pred"
        )
    if not np.all(np.isfinite(pred)):
        raise InvalidInputError("p_pred contains NaN or infinite values", field="p_pred")
    y, scores = truth[:, 1:].ravel(), pred[:, 1:].ravel()
    if y.size == 0 or np.unique(y).size < 2:
        raise InvalidInputError(
            "AUC needs both right and wrong answers at positions 2…T", field="dataset"
        )
    return float(roc_auc_score(y, scores))


def marginal_baseline(dataset: KTDataset) -> FloatArray:
    """Per-exercise mean correctness on the training rows, looked up for every test answer.

    An exercise never seen in training gets the overall training mean.
    """
    train, test = dataset.train(), dataset.test()
    size = int(max(dataset.beta.size, dataset.exercises.max(initial=-1) + 1))
    counts = np.bincount(train.exercises.ravel(), minlength=size).astype(np.float64)
    rights = np.bincount(train.exercises.ravel(), weights=train.correct.ravel(), minlength=size)
    overall = float(train.correct.mean()) if train.correct.size else 0.5
    means = np.where(counts > 0, rights / np.maximum(counts, 1.0), overall)
    return np.asarray(means[test.exercises], dtype=np.float64)


def oracle(dataset: KTDataset) -> FloatArray:
    """The Bayes-optimal prediction of every test answer given that student's earlier answers.

    It knows everything the generator drew except the student: the concept of each exercise,
    every ``β_j``, the guess rate, the learning step and the ``N(0, 3²)`` prior of ``α_k``. The
    posterior of each initial ``α_k`` is kept on a grid and updated after every answer. This
    is the "oracle ≈ 0.83" of USE-CASES.md; ``dataset.test().true_p``, which also knows each
    student's ``α``, is a looser upper bound (AUC ≈ 0.89) that no model can approach.
    """
    test = dataset.test()
    n, n_steps = test.correct.shape
    grid = np.linspace(-4.0 * ALPHA_SD, 4.0 * ALPHA_SD, 201)
    n_concepts = int(dataset.exercise_concept.max(initial=0)) + 1
    log_post = np.broadcast_to(-0.5 * (grid / ALPHA_SD) ** 2, (n, n_concepts, grid.size)).copy()
    attempts = np.zeros((n, n_concepts), dtype=np.int64)
    rows = np.arange(n)
    out = np.empty((n, n_steps), dtype=np.float64)
    for t in range(n_steps):
        j = test.exercises[:, t]
        k = dataset.exercise_concept[j]
        shift = LEARNING_STEP * attempts[rows, k] - dataset.beta[j]
        logits = grid[None, :] + shift[:, None]
        p_grid = GUESS + (1.0 - GUESS) * _sigmoid(logits)
        weights = np.exp(log_post[rows, k] - log_post[rows, k].max(axis=1, keepdims=True))
        out[:, t] = (weights * p_grid).sum(axis=1) / weights.sum(axis=1)
        right = test.correct[:, t][:, None] == 1
        log_post[rows, k] += np.log(np.where(right, p_grid, 1.0 - p_grid))
        attempts[rows, k] += 1
    return out
