"""AutoML's model families: a search space and a first (default) configuration per family,
and fits that stop at a wall-clock cap.

How each family keeps to its cap (checked *inside* the fit, not only between fits):

==========================  ==============================================================
family                      time box
==========================  ==============================================================
``linear``                  none needed (one solver run; ``max_iter`` bounded)
``random_forest``           trees grown in chunks with ``warm_start``; stops adding trees
``hist_gradient_boosting``  boosting iterations in chunks with ``warm_start``; stops adding
``lightgbm``                a training callback ends boosting (``EarlyStopException``)
``xgboost``                 a ``TrainingCallback`` ends boosting
==========================  ==============================================================

The preprocessing step is fitted once, then only the estimator grows, so a stopped fit is a
complete, smaller model.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sibyl.training._data import Task
from sibyl.training._estimators import build_pipeline, installed_estimators, make_estimator

if TYPE_CHECKING:
    import pandas as pd

FAMILIES = ("linear", "hist_gradient_boosting", "random_forest", "lightgbm", "xgboost")
"""AutoML's families, cheapest first (the order of the first round)."""

_BOOST = {
    "learning_rate": {"type": "loguniform", "low": 0.01, "high": 0.3},
    "n_estimators": {"type": "int", "low": 30, "high": 400, "log": True},
    "max_depth": {"type": "int", "low": 2, "high": 10},
    "subsample": {"type": "float", "low": 0.5, "high": 1.0},
    "colsample_bytree": {"type": "float", "low": 0.5, "high": 1.0},
}
SPACES: dict[str, dict[str, Any]] = {
    "linear": {"C": {"type": "loguniform", "low": 1e-3, "high": 100.0}},
    "linear:regression": {"alpha": {"type": "loguniform", "low": 1e-3, "high": 100.0}},
    "random_forest": {
        "n_estimators": {"type": "int", "low": 20, "high": 300, "log": True},
        "max_depth": {"type": "int", "low": 2, "high": 20},
        "min_samples_leaf": {"type": "int", "low": 1, "high": 20},
        "max_features": {"type": "categorical", "choices": ["sqrt", 0.5, 1.0]},
    },
    "hist_gradient_boosting": {
        "learning_rate": {"type": "loguniform", "low": 0.01, "high": 0.3},
        "max_iter": {"type": "int", "low": 30, "high": 400, "log": True},
        "max_leaf_nodes": {"type": "int", "low": 8, "high": 64, "log": True},
        "min_samples_leaf": {"type": "int", "low": 5, "high": 50},
        "l2_regularization": {"type": "loguniform", "low": 1e-6, "high": 1.0},
    },
    "xgboost": _BOOST,
    "lightgbm": {
        **{k: v for k, v in _BOOST.items() if k != "max_depth" and k != "subsample"},
        "num_leaves": {"type": "int", "low": 8, "high": 128, "log": True},
        "min_child_samples": {"type": "int", "low": 5, "high": 50},
    },
}
"""Per-family search spaces (the :mod:`sibyl.training._space` format)."""

FIRST: dict[str, dict[str, Any]] = {
    "linear": {"C": 1.0},
    "linear:regression": {"alpha": 1.0},
    "random_forest": {
        "n_estimators": 100,
        "max_depth": 12,
        "min_samples_leaf": 1,
        "max_features": "sqrt",
    },
    "hist_gradient_boosting": {
        "learning_rate": 0.1,
        "max_iter": 100,
        "max_leaf_nodes": 31,
        "min_samples_leaf": 20,
        "l2_regularization": 1e-6,
    },
    "xgboost": {
        "learning_rate": 0.1,
        "n_estimators": 100,
        "max_depth": 6,
        "subsample": 1.0,
        "colsample_bytree": 1.0,
    },
    "lightgbm": {
        "learning_rate": 0.1,
        "n_estimators": 100,
        "colsample_bytree": 1.0,
        "num_leaves": 31,
        "min_child_samples": 20,
    },
}
"""Each family's first trial: its library's usual defaults, inside its space."""

_CHUNK = {"random_forest": ("n_estimators", 10), "hist_gradient_boosting": ("max_iter", 20)}


def available_families(requested: list[str] | None = None) -> list[str]:
    """``requested`` (default :data:`FAMILIES`) restricted to the installed ones."""
    from sibyl.errors import InvalidInputError

    installed = set(installed_estimators())
    chosen = list(requested or FAMILIES)
    unknown = [f for f in chosen if f not in SPACES]
    if unknown:
        raise InvalidInputError(
            f"Unknown families {unknown}; choose among {', '.join(FAMILIES)}", field="families"
        )
    return [f for f in chosen if f in installed]


def space_key(family: str, task: Task) -> str:
    """The :data:`SPACES` / :data:`FIRST` key of ``family`` for ``task``."""
    return f"{family}:regression" if family == "linear" and task is Task.REGRESSION else family


def fit_within(
    family: str,
    params: dict[str, Any],
    x: pd.DataFrame,
    y: pd.Series[Any],
    task: Task,
    seed: int,
    cap_s: float,
) -> Any:
    """A pipeline of ``family`` with ``params`` fitted on (``x``, ``y``), its estimator grown
    only while ``cap_s`` seconds have not passed (see the module docstring)."""
    estimator = make_estimator(family, task, params, seed)
    pipeline = build_pipeline(estimator, x)
    until = time.monotonic() + max(cap_s, 0.05)
    xt = pipeline.named_steps["prep"].fit_transform(x, y)
    if family in _CHUNK:
        _grow(estimator, family, xt, y, until)
    elif family == "lightgbm":
        estimator.fit(xt, y, callbacks=[_lightgbm_stop(until)])
    elif family == "xgboost":
        estimator.set_params(callbacks=[_xgboost_stop(until)])
        try:
            estimator.fit(xt, y)
        finally:
            estimator.set_params(callbacks=None)
    else:
        estimator.fit(xt, y)
    return pipeline


def _grow(estimator: Any, family: str, xt: Any, y: Any, until: float) -> None:
    key, chunk = _CHUNK[family]
    target = int(estimator.get_params()[key])
    size = min(chunk, target)
    estimator.set_params(warm_start=True)
    while True:
        started = time.monotonic()
        estimator.set_params(**{key: size})
        estimator.fit(xt, y)
        took = time.monotonic() - started
        if size >= target or time.monotonic() + took >= until or _stopped_early(estimator, size):
            break  # the next chunk would likely end past the cap
        size = min(target, size + chunk)
    estimator.set_params(warm_start=False, **{key: size})


def _stopped_early(estimator: Any, size: int) -> bool:
    """HistGradientBoosting's own early stopping ended before ``size`` iterations."""
    n_iter = getattr(estimator, "n_iter_", None)
    return n_iter is not None and int(n_iter) < size


def _lightgbm_stop(until: float) -> Any:
    import lightgbm

    last = [time.monotonic()]

    def callback(env: Any) -> None:
        now = time.monotonic()
        step, last[0] = now - last[0], now
        if now + step >= until:
            raise lightgbm.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

    callback.order = 30  # type: ignore[attr-defined]
    return callback


def _xgboost_stop(until: float) -> Any:
    import xgboost

    class StopAtDeadline(xgboost.callback.TrainingCallback):  # type: ignore[misc]
        last = time.monotonic()

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            now = time.monotonic()
            step, self.last = now - self.last, now
            return now + step >= until

    return StopAtDeadline()
