"""Bayesian Knowledge Tracing (Corbett & Anderson 1995), fitted per skill by EM; vectorised numpy.

Each skill is a two-state hidden Markov model per student: *unknown* or *known*. A student
starts known with ``p_init``, goes from unknown to known after any attempt with ``p_learn``
(never back: no forgetting), and answers right with ``p_guess`` when unknown, ``1 - p_slip``
when known. Every (student, skill) pair is an independent chain of that student's attempts on
the skill's exercises, in order. :func:`fit_bkt` runs Baum-Welch (EM) on all chains at once,
pooling the expected counts per skill; ``p_guess`` and ``p_slip`` are kept below 0.5 so
*known* always means more likely right (the usual identifiability constraint).

**What a skill is on Simulated-5.** The five concepts are hidden from every model, so BKT may
only use observed labels. Making every exercise its own skill is degenerate there: everyone
answers each exercise once, so each chain has one step, nothing is traced and BKT collapses to
a per-exercise mean (the marginal baseline). :func:`bkt_baseline` therefore uses **one skill
for all exercises** (``skill_of=None``): BKT traces one overall ability and ignores exercise
difficulty, which is what BKT can do without a concept map (the paper reports 0.54 there). Pass
an exercise → skill map to use real skills where a data set has them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sibyl.errors import InvalidInputError
from sibyl.zoo.knowledge_tracing.data import FloatArray, IntArray, KTDataset

PROBABILITY_FLOOR = 1e-4
"""Every fitted probability stays within ``[PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR]``."""
NOISE_CEILING = 0.499
"""Upper bound of ``p_guess`` and ``p_slip``."""
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class BKTParams:
    """The four BKT probabilities of one skill."""

    p_init: float
    p_learn: float
    p_guess: float
    p_slip: float


@dataclass(frozen=True)
class BKTModel:
    """Fitted BKT: ``skill_of[j]`` is the skill of exercise ``j``, ``params[s]`` its BKT
    probabilities. ``log_likelihood`` is the training log-likelihood of the last EM step."""

    skill_of: IntArray
    params: tuple[BKTParams, ...]
    log_likelihood: float
    iterations: int

    def predict(self, exercises: IntArray, correct: npt.ArrayLike, lengths: IntArray) -> FloatArray:
        """``(n, T)`` P(right) of every attempt given the earlier ones (padded steps: NaN).

        ``exercises``/``correct`` are right-padded ``(n, T)``, ``lengths`` the true lengths.
        """
        answers = np.asarray(correct, dtype=np.float64)
        mask = _mask(lengths, exercises.shape[1])
        _check_ids(exercises[mask], self.skill_of.size)
        init, learn, guess, slip = _param_arrays(self.params)
        n = exercises.shape[0]
        known = np.tile(init, (n, 1))
        rows = np.arange(n)
        out = np.full(exercises.shape, np.nan)
        for t in range(exercises.shape[1]):
            live, s = mask[:, t], self.skill_of[exercises[:, t]]
            p_known = known[rows, s]
            right = p_known * (1.0 - slip[s])
            p = right + (1.0 - p_known) * guess[s]
            post = np.where(answers[:, t] == 1, right / p, p_known * slip[s] / (1.0 - p))
            known[rows, s] = np.where(live, post + (1.0 - post) * learn[s], p_known)
            out[:, t] = np.where(live, p, np.nan)
        return out


def _mask(lengths: IntArray, steps: int) -> BoolArray:
    mask: BoolArray = np.arange(steps)[None, :] < np.asarray(lengths)[:, None]
    return mask


def _check_ids(exercises: IntArray, n_exercises: int) -> None:
    if exercises.size and (exercises.min() < 0 or exercises.max() >= n_exercises):
        raise InvalidInputError(
            f"exercise ids must be within [0, {n_exercises - 1}] (the skill map), got "
            f"[{exercises.min()}, {exercises.max()}]",
            field="exercises",
        )


def _param_arrays(params: tuple[BKTParams, ...]) -> tuple[FloatArray, ...]:
    return tuple(
        np.array([getattr(p, name) for p in params], dtype=np.float64)
        for name in ("p_init", "p_learn", "p_guess", "p_slip")
    )


@dataclass(frozen=True)
class _Chains:
    """One row per (student, skill) pair: its answers in order, right-padded."""

    answers: FloatArray  # (c, L) 0/1, padded with 0
    mask: BoolArray  # (c, L)
    skill: IntArray  # (c,)


def _chains(
    exercises: IntArray, correct: FloatArray, mask: BoolArray, skill_of: IntArray
) -> _Chains:
    rows, steps = np.nonzero(mask)  # row-major: in time order within each row
    skills = skill_of[exercises[rows, steps]]
    order = np.lexsort((steps, skills, rows))
    rows, skills, answers = rows[order], skills[order], correct[rows[order], steps[order]]
    new = np.r_[True, (rows[1:] != rows[:-1]) | (skills[1:] != skills[:-1])]
    chain = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    position = np.arange(rows.size) - starts[chain]
    shape = (starts.size, int(position.max(initial=0)) + 1)
    out, live = np.zeros(shape), np.zeros(shape, dtype=bool)
    out[chain, position], live[chain, position] = answers, True
    return _Chains(out, live, skills[starts])


def _emissions(
    answers: FloatArray, live: BoolArray, guess: FloatArray, slip: FloatArray
) -> FloatArray:
    """``(c, L, 2)`` P(answer | unknown), P(answer | known); 1 at padded steps."""
    right = answers[..., None] == 1
    per_state = np.stack([guess, 1.0 - slip], axis=1)[:, None, :]
    emit = np.where(right, per_state, 1.0 - per_state)
    return np.where(live[..., None], emit, 1.0)


def _forward_backward(
    chains: _Chains, init: FloatArray, learn: FloatArray, emit: FloatArray
) -> tuple[FloatArray, FloatArray, float]:
    """Scaled forward-backward: state posteriors ``(c, L, 2)``, expected unknown→known
    transitions ``(c, L-1)`` and the log-likelihood."""
    c, steps = chains.mask.shape
    learn_t = np.where(chains.mask[:, 1:], learn[:, None], 0.0)  # padded steps: no transition
    alpha, scale = np.empty((c, steps, 2)), np.empty((c, steps))
    a = np.stack([1.0 - init, init], axis=1) * emit[:, 0]
    for t in range(steps):
        if t:
            moved = a[:, 0] * learn_t[:, t - 1]
            a = np.stack([a[:, 0] - moved, a[:, 1] + moved], axis=1) * emit[:, t]
        scale[:, t] = a.sum(axis=1)
        a = a / scale[:, t, None]
        alpha[:, t] = a
    beta = np.ones((c, steps, 2))
    for t in range(steps - 2, -1, -1):
        nxt = emit[:, t + 1] * beta[:, t + 1] / scale[:, t + 1, None]
        lt = learn_t[:, t]
        beta[:, t] = np.stack([(1.0 - lt) * nxt[:, 0] + lt * nxt[:, 1], nxt[:, 1]], axis=1)
    gamma = alpha * beta
    xi = alpha[:, :-1, 0] * learn_t * emit[:, 1:, 1] * beta[:, 1:, 1] / scale[:, 1:]
    return gamma, xi, float(np.log(scale[chains.mask]).sum())


def _m_step(
    chains: _Chains, gamma: FloatArray, xi: FloatArray, n_skills: int
) -> tuple[FloatArray, ...]:
    def per_skill(values: FloatArray) -> FloatArray:
        return np.bincount(chains.skill, weights=values, minlength=n_skills).astype(np.float64)

    live, right = chains.mask, chains.answers == 1
    unknown, known = gamma[..., 0] * live, gamma[..., 1] * live
    init = per_skill(gamma[:, 0, 1]) / np.maximum(per_skill(np.ones(len(chains.skill))), 1.0)
    learn = per_skill(xi.sum(axis=1)) / np.maximum(
        per_skill((unknown[:, :-1] * live[:, 1:]).sum(axis=1)), 1e-12
    )
    guess = per_skill((unknown * right).sum(axis=1)) / np.maximum(
        per_skill(unknown.sum(axis=1)), 1e-12
    )
    slip = per_skill((known * ~right).sum(axis=1)) / np.maximum(per_skill(known.sum(axis=1)), 1e-12)
    low, high = PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR
    return (
        np.clip(init, low, high),
        np.clip(learn, low, high),
        np.clip(guess, low, NOISE_CEILING),
        np.clip(slip, low, NOISE_CEILING),
    )


def fit_bkt(
    exercises: IntArray,
    correct: npt.ArrayLike,
    lengths: IntArray,
    skill_of: IntArray | None = None,
    *,
    max_iter: int = 200,
    tol: float = 1e-6,
    start: BKTParams = BKTParams(0.4, 0.1, 0.2, 0.1),
) -> BKTModel:
    """Fit BKT by EM on right-padded ``(n, T)`` attempts with true ``lengths``.

    ``skill_of`` maps exercise id → skill id (default: every exercise is skill 0). EM starts
    every skill from ``start`` and stops after ``max_iter`` steps or once the log-likelihood
    gains less than ``tol`` per attempt. Raises :class:`InvalidInputError` for ids outside the
    skill map or no attempts.
    """
    answers = np.asarray(correct, dtype=np.float64)
    mask = _mask(lengths, exercises.shape[1])
    n_ids = int(exercises[mask].max(initial=-1)) + 1
    skills = np.zeros(n_ids, dtype=np.int64) if skill_of is None else np.asarray(skill_of)
    _check_ids(exercises[mask], skills.size)
    if skills.size and skills.min() < 0:
        raise InvalidInputError("skill_of must hold skill ids >= 0", field="skill_of")
    if not mask.any():
        raise InvalidInputError("need at least one attempt to fit BKT", field="lengths")
    if max_iter < 1:
        raise InvalidInputError(f"max_iter must be at least 1, got {max_iter}", field="max_iter")
    chains = _chains(exercises, answers, mask, skills)
    n_skills = int(skills.max()) + 1
    params = tuple(
        np.full(n_skills, v) for v in (start.p_init, start.p_learn, start.p_guess, start.p_slip)
    )
    previous, iterations = -np.inf, 0
    while iterations < max_iter:
        iterations += 1
        init, learn, guess, slip = (p[chains.skill] for p in params)
        gamma, xi, loglik = _forward_backward(
            chains, init, learn, _emissions(chains.answers, chains.mask, guess, slip)
        )
        params = _m_step(chains, gamma, xi, n_skills)
        if loglik - previous < tol * mask.sum():
            break
        previous = loglik
    fitted = tuple(BKTParams(*(float(p[s]) for p in params)) for s in range(n_skills))
    return BKTModel(skills, fitted, loglik, iterations)


def bkt_baseline(dataset: KTDataset, skill_of: IntArray | None = None) -> FloatArray:
    """Fit BKT on the training rows and predict every test answer (the shape
    :func:`~sibyl.zoo.knowledge_tracing.evaluate_positions` scores). One skill for all
    exercises unless ``skill_of`` says otherwise (see the module docstring for why)."""
    train, test = dataset.train(), dataset.test()
    n_ids = max(int(dataset.exercises.max(initial=-1)) + 1, dataset.beta.size)
    skills = np.zeros(n_ids, dtype=np.int64) if skill_of is None else skill_of
    full = np.full(train.n_students, train.exercises.shape[1])
    model = fit_bkt(train.exercises, train.correct, full, skills)
    lengths = np.full(test.n_students, test.exercises.shape[1])
    return model.predict(test.exercises, test.correct, lengths)


def sample_bkt(
    params: BKTParams, n_students: int, n_steps: int, seed: int = 0
) -> tuple[IntArray, npt.NDArray[np.int8]]:
    """Answers drawn from BKT itself (one skill, exercise id 0 every step): ``exercises`` and
    ``correct``, both ``(n_students, n_steps)``. Deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    known = rng.random(n_students) < params.p_init
    correct = np.empty((n_students, n_steps), dtype=np.int8)
    for t in range(n_steps):
        p = np.where(known, 1.0 - params.p_slip, params.p_guess)
        correct[:, t] = rng.random(n_students) < p
        known |= rng.random(n_students) < params.p_learn
    return np.zeros((n_students, n_steps), dtype=np.int64), correct
