"""Zoo use cases as tuning problems: their generated data and their own pipelines, whose
parameters the search space names the scikit-learn way (``classifier__C``,
``features__text__tfidf__min_df`` …).

======================  ==========================================  =========================
use case                pipeline                                    example space
======================  ==========================================  =========================
``calendar``            TF-IDF + time features + logistic regr.     ``classifier__C``
``threat``              TF-IDF + logistic regression                ``classifier__C``
``churn``               HistGradientBoosting on window features     ``classifier__max_depth``
======================  ==========================================  =========================

``dkt`` and ``struggle`` train torch sequence models / incremental calibrated models with their
own loops and are not tuned through this path (train them with ``sibyl train``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sibyl.errors import InvalidInputError
from sibyl.training._data import Dataset, Task, split_dataset
from sibyl.training._objective import Problem

DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "calendar": {"classifier__C": {"type": "loguniform", "low": 0.1, "high": 30.0}},
    "threat": {"classifier__C": {"type": "loguniform", "low": 0.1, "high": 30.0}},
    "churn": {
        "classifier__max_depth": {"type": "int", "low": 2, "high": 6},
        "classifier__learning_rate": {"type": "loguniform", "low": 0.01, "high": 0.3},
    },
}
"""A reasonable space per tunable use case (``sibyl tune <use-case>`` without ``--space``)."""


def zoo_problem(use_case: str, *, full: bool = False, seed: int = 0) -> tuple[Problem, str]:
    """The tuning :class:`Problem` of ``use_case`` and the model name it registers under."""
    makers: dict[str, Callable[[bool, int], tuple[Problem, str]]] = {
        "calendar": _calendar,
        "threat": _threat,
        "churn": _churn,
    }
    if use_case not in makers:
        raise InvalidInputError(
            f"Use case '{use_case}' cannot be tuned here; tunable: {', '.join(makers)}",
            field="use_case",
        )
    return makers[use_case](full, seed)


def _problem(
    x: Any, y: Any, build: Callable[[], Any], target: str, source: str, seed: int
) -> Problem:
    dataset = Dataset(x, y, Task.CLASSIFICATION, target, source)
    split = split_dataset(dataset, 0.25, seed)

    def make(params: dict[str, Any]) -> Any:
        model = build()
        try:
            return model.set_params(**params)
        except ValueError as exc:
            raise InvalidInputError(f"Bad pipeline parameter: {exc}", field="space") from exc

    return Problem(split, target, make, "pipeline", source)


def _calendar(full: bool, seed: int) -> tuple[Problem, str]:
    from sibyl.zoo.calendar import train as cal
    from sibyl.zoo.calendar.data import generate_events

    events = generate_events(cal.FULL_N if full else cal.DEMO_N, seed)
    x, y = cal.serving_frame(events), events["category"].astype(str)
    problem = _problem(x, y, lambda: cal.build_pipeline(seed), "category", "zoo:calendar", seed)
    return problem, cal.MODEL_NAME


def _threat(full: bool, seed: int) -> tuple[Problem, str]:
    from sibyl.zoo.threat import train as thr
    from sibyl.zoo.threat.data import generate_events

    events = generate_events(thr.FULL_N if full else thr.DEMO_N, seed)
    x, y = events[["text"]].astype({"text": str}), events["category"].astype(str)
    problem = _problem(x, y, lambda: thr.build_pipeline(seed), "category", "zoo:threat", seed)
    return problem, thr.MODEL_NAME


def _churn(full: bool, seed: int) -> tuple[Problem, str]:
    from sibyl.zoo.churn import train as churn
    from sibyl.zoo.churn.simulate import simulate

    config = churn.FULL if full else churn.SMALL
    sim = simulate(n_users=config.n_users, n_months=config.n_months, seed=seed)
    frame = churn.training_frame(sim)
    x, y = frame[list(churn.FEATURES)], frame[churn.LABEL]
    problem = _problem(
        x, y, lambda: churn.build_pipeline(seed, config.max_iter), churn.LABEL, "zoo:churn", seed
    )
    return problem, churn.MODEL_NAME
