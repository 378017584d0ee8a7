"""Reproducing the DKT paper's Simulated-5 table (Piech et al. 2015) with this package.

:func:`reproduce` generates Simulated-5 (4,000 students, half for training), fits the marginal
baseline, BKT (one skill, see :mod:`~sibyl.zoo.knowledge_tracing.bkt`), DKT (LSTM) and the
SAKT-style Transformer, and scores each test prediction with
:func:`~sibyl.zoo.knowledge_tracing.evaluate_positions`, beside the paper's AUC and the oracle
that knows every generator parameter but the students'.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sibyl.zoo._registering import Progress, no_progress

PAPER_AUC: dict[str, float | None] = {
    "marginal": 0.64,
    "BKT": 0.54,
    "DKT (LSTM)": 0.82,
    "DKT-Transformer (SAKT)": None,
    "oracle": None,
}
"""AUC the paper reports on Simulated-5 for each row (None: not in the paper)."""
REPRODUCE_STEPS = 6
"""Steps :func:`reproduce` announces through ``progress`` (data, then one per row)."""


@dataclass(frozen=True, slots=True)
class ReproRow:
    """One row of the table: a model, its measured test AUC, the paper's (None: not
    reported), the wall-clock seconds to fit and predict, and a note."""

    model: str
    auc: float
    paper_auc: float | None
    seconds: float
    note: str = ""


def _timed(model: str, run: Callable[[], tuple[float, str]]) -> ReproRow:
    started = time.perf_counter()
    auc, note = run()
    return ReproRow(model, auc, PAPER_AUC[model], time.perf_counter() - started, note)


def reproduce(
    *, full: bool = False, seed: int = 0, threads: int = 1, progress: Progress = no_progress
) -> list[ReproRow]:
    """Measure the table's five rows on Simulated-5 generated with ``seed``.

    ``full`` trains the networks with the :data:`~sibyl.zoo.knowledge_tracing.train.FULL`
    recipe (to convergence: minutes), otherwise with
    :data:`~sibyl.zoo.knowledge_tracing.train.SMALL` (seconds; the CI smoke run). ``threads``
    is torch's thread count while training. ``progress`` is called before each of the
    :data:`REPRODUCE_STEPS` steps.
    """
    from sibyl.zoo.knowledge_tracing.bkt import bkt_baseline
    from sibyl.zoo.knowledge_tracing.data import (
        evaluate_positions,
        marginal_baseline,
        oracle,
        simulate_5,
    )
    from sibyl.zoo.knowledge_tracing.train import KINDS, TITLES, recipe, train_model

    progress("generating Simulated-5")
    dataset = simulate_5(recipe(full).n_students, seed=seed)
    progress("marginal baseline")
    rows = [
        _timed("marginal", lambda: (evaluate_positions(dataset, marginal_baseline(dataset)), ""))
    ]
    progress("BKT (EM)")
    rows.append(
        _timed("BKT", lambda: (evaluate_positions(dataset, bkt_baseline(dataset)), "one skill"))
    )
    for kind in KINDS:
        progress(f"training {TITLES[kind]}")
        trained = train_model(kind, dataset, chosen=recipe(full), seed=seed, threads=threads)
        note = f"{trained.fit.epochs} epochs, best {trained.fit.best_epoch}"
        rows.append(
            ReproRow(TITLES[kind], trained.auc, PAPER_AUC[TITLES[kind]], trained.seconds, note)
        )
    progress("oracle")
    rows.append(
        _timed(
            "oracle", lambda: (evaluate_positions(dataset, oracle(dataset)), "knows the generator")
        )
    )
    return rows
