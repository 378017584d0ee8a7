"""Tree pruning of fitted ensembles: keep fewer trees while the validation metric stays within
``tolerance`` (absolute) of the full model's.

How each family is pruned:

===========================  ================================================================
family                       method
===========================  ================================================================
random forest, extra trees   greedy backward elimination: trees are independent and averaged,
                             so any subset is a valid forest. Each step scores dropping each
                             remaining tree (per-tree outputs are computed once and averaged
                             incrementally), drops the least useful ones — up to a tenth of
                             the forest at once, then one by one — and stops when any further
                             drop would leave the tolerance. Usefulness is the smooth loss
                             (log loss / squared error) without the tree; the tolerance is
                             checked on the chosen metric.
sklearn GradientBoosting     boosting stages depend on the ones before: only a prefix is a
HistGradientBoosting         valid model, so the smallest number of stages / iterations within
xgboost, lightgbm            the tolerance is kept (staged predictions for sklearn,
                             ``iteration_range`` / ``num_iteration`` for the boosters).
===========================  ================================================================

The model is changed in place on a copy: the pruned pipeline predicts exactly like the full
one restricted to the kept trees. ``estimators_`` / ``n_estimators`` are public for the forests
and GradientBoosting; HistGradientBoosting's ``_predictors`` and LightGBM's ``_Booster`` are not
(covered by tests); xgboost is sliced with ``Booster[:k]`` and reloaded with ``load_model``.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from sibyl.errors import InvalidInputError
from sibyl.training._data import Task
from sibyl.training._estimators import final_estimator
from sibyl.training._metrics import higher_is_better, score_outputs


@dataclass(frozen=True)
class Pruned:
    """The pruned model (a copy), trees kept of the total, and what was done."""

    model: Any
    kept: int
    total: int
    method: str


def prune_trees(model: Any, x: Any, y: Any, task: Task, metric: str, tolerance: float) -> Pruned:
    """A copy of ``model`` (an ensemble or a pipeline ending in one) with fewer trees, its
    ``metric`` on (``x``, ``y``) within ``tolerance`` of the original (see the module
    docstring). :class:`InvalidInputError` for a model that is not a tree ensemble."""
    pruned = copy.deepcopy(model)
    estimator = final_estimator(pruned)
    xt = _transformed(pruned, x)
    family = type(estimator).__name__
    if family.startswith(("RandomForest", "ExtraTrees")):
        return _prune_forest(pruned, estimator, xt, y, task, metric, tolerance)
    prefix = _PREFIX.get(family.removesuffix("Classifier").removesuffix("Regressor"))
    if prefix is None:
        raise InvalidInputError(
            f"{family} is not a tree ensemble sibyl can prune; supported: random forest, extra "
            "trees, GradientBoosting, HistGradientBoosting, xgboost, lightgbm",
            field="model",
        )
    staged, total, truncate = prefix(estimator, xt, task)
    classes = _classes(estimator, task)
    keep = _smallest_prefix(staged, total, y, task, metric, tolerance, classes)
    truncate(estimator, keep)
    return Pruned(pruned, keep, total, f"kept the first {keep} of {total} boosting rounds")


def _transformed(model: Any, x: Any) -> Any:
    steps = getattr(model, "steps", None)
    if not steps or len(steps) == 1:
        return x
    return model[:-1].transform(x)


def _classes(estimator: Any, task: Task) -> list[Any] | None:
    return list(estimator.classes_) if task is Task.CLASSIFICATION else None


def _within(value: float, reference: float, metric: str, tolerance: float) -> bool:
    gain = value - reference if higher_is_better(metric) else reference - value
    return bool(gain >= -tolerance - 1e-12)


# ---- forests -----------------------------------------------------------------------------


def _tree_outputs(estimator: Any, xt: Any, task: Task) -> np.ndarray[Any, Any]:
    """(trees, rows, classes) probabilities, or (trees, rows) predictions."""
    xt = np.asarray(xt, dtype=np.float32)
    if task is Task.CLASSIFICATION:
        return np.stack([t.predict_proba(xt) for t in estimator.estimators_])
    return np.stack([t.predict(xt) for t in estimator.estimators_])


def _prune_forest(
    model: Any, estimator: Any, xt: Any, y: Any, task: Task, metric: str, tolerance: float
) -> Pruned:
    outputs = _tree_outputs(estimator, xt, task)
    classes = _classes(estimator, task)
    total = outputs.shape[0]
    kept = list(range(total))
    reference = score_outputs(task, metric, y, outputs.mean(axis=0), classes)
    truth = _truth_index(y, classes)
    running = outputs.sum(axis=0)
    while len(kept) > 1:
        ranked = _rank_drops(outputs, running, kept, truth)
        dropped = _drop_batch(
            ranked, outputs, running, kept, y, task, metric, tolerance, reference, classes
        )
        if not dropped:
            break
        for t in dropped:
            running = running - outputs[t]
            kept.remove(t)
    estimator.estimators_ = [estimator.estimators_[t] for t in kept]
    estimator.n_estimators = len(kept)
    return Pruned(model, len(kept), total, f"kept {len(kept)} of {total} trees (greedy)")


def _truth_index(y: Any, classes: list[Any] | None) -> np.ndarray[Any, Any]:
    """Each row's class position in ``classes`` (classifiers) or its value (regressors)."""
    values = np.asarray(y)
    if classes is None:
        return values.astype(np.float64)
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup[v] for v in values.tolist()], dtype=np.int64)


def _rank_drops(outputs: Any, running: Any, kept: list[int], truth: Any) -> list[int]:
    """Trees of ``kept`` ordered from the least useful on: the smooth loss (log loss, squared
    error) of the forest without each tree, all candidates at once."""
    index = np.asarray(kept)
    without = (running[None, ...] - outputs[index]) / (len(kept) - 1)
    if without.ndim == 3:  # (candidates, rows, classes): log loss of the true class
        rows = np.arange(without.shape[1])
        p = np.clip(without[:, rows, truth], 1e-15, 1.0)
        loss = -np.log(p).mean(axis=1)
    else:
        loss = ((without - truth[None, :]) ** 2).mean(axis=1)
    return [int(t) for t in index[np.argsort(loss, kind="stable")]]


def _drop_batch(
    ranked: list[int],
    outputs: Any,
    running: Any,
    kept: list[int],
    y: Any,
    task: Task,
    metric: str,
    tolerance: float,
    reference: float,
    classes: list[Any] | None,
) -> list[int]:
    """The largest batch (a tenth of the forest, halved until it fits, down to one tree) of
    the least useful trees whose removal keeps the metric within the tolerance."""
    size = max(1, len(kept) // 10)
    while size >= 1:
        batch = ranked[:size]
        if len(kept) - len(batch) >= 1:
            rest = running - outputs[batch].sum(axis=0)
            value = score_outputs(task, metric, y, rest / (len(kept) - len(batch)), classes)
            if _within(value, reference, metric, tolerance):
                return batch
        size //= 2
    return []


# ---- boosting prefixes -------------------------------------------------------------------

Staged = Callable[[int], np.ndarray[Any, Any]]
"""``outputs(k)``: the model's outputs using its first ``k`` rounds."""


def _smallest_prefix(
    staged: Staged,
    total: int,
    y: Any,
    task: Task,
    metric: str,
    tolerance: float,
    classes: list[Any] | None,
) -> int:
    reference = score_outputs(task, metric, y, staged(total), classes)
    for k in _candidates(total):
        if _within(
            score_outputs(task, metric, y, staged(k), classes), reference, metric, tolerance
        ):
            return k
    return total


def _candidates(total: int) -> Iterator[int]:
    """1 … total with at most ~60 steps (every round while small, then evenly spaced)."""
    step = max(1, total // 60)
    yield from range(step, total, step)
    yield total


def _sklearn_gb(estimator: Any, xt: Any, task: Task) -> tuple[Staged, int, Any]:
    method = (
        estimator.staged_predict_proba
        if task is Task.CLASSIFICATION
        else (estimator.staged_predict)
    )
    stages = [np.asarray(o) for o in method(xt)]

    def truncate(est: Any, k: int) -> None:
        est.estimators_ = est.estimators_[:k]
        est.train_score_ = est.train_score_[:k]
        est.n_estimators = k
        est.n_estimators_ = k

    return (lambda k: stages[k - 1]), len(stages), truncate


def _sklearn_hgb(estimator: Any, xt: Any, task: Task) -> tuple[Staged, int, Any]:
    method = (
        estimator.staged_predict_proba
        if task is Task.CLASSIFICATION
        else (estimator.staged_predict)
    )
    stages = [np.asarray(o) for o in method(xt)]

    def truncate(est: Any, k: int) -> None:
        est._predictors = est._predictors[:k]  # n_iter_ is len(_predictors)
        for name in ("train_score_", "validation_score_"):
            scores = getattr(est, name, None)
            if scores is not None and len(scores):
                setattr(est, name, scores[: k + 1])
        est.max_iter = k

    return (lambda k: stages[k - 1]), len(stages), truncate


def _xgboost(estimator: Any, xt: Any, task: Task) -> tuple[Staged, int, Any]:
    total = int(estimator.get_booster().num_boosted_rounds())
    method = estimator.predict_proba if task is Task.CLASSIFICATION else estimator.predict

    def truncate(est: Any, k: int) -> None:
        sliced = est.get_booster()[:k]
        with tempfile.TemporaryDirectory(prefix="sibyl-xgb-") as tmp:
            path = os.path.join(tmp, "model.json")
            sliced.save_model(path)
            est.load_model(path)
        est.set_params(n_estimators=k)

    return (lambda k: np.asarray(method(xt, iteration_range=(0, k)))), total, truncate


def _lightgbm(estimator: Any, xt: Any, task: Task) -> tuple[Staged, int, Any]:
    import lightgbm

    total = int(estimator.booster_.current_iteration())
    method = estimator.predict_proba if task is Task.CLASSIFICATION else estimator.predict

    def truncate(est: Any, k: int) -> None:
        text = est.booster_.model_to_string(num_iteration=k)
        est._Booster = lightgbm.Booster(model_str=text)
        est.set_params(n_estimators=k)

    return (lambda k: np.asarray(method(xt, num_iteration=k))), total, truncate


_PREFIX: dict[str, Callable[[Any, Any, Task], tuple[Staged, int, Any]]] = {
    "GradientBoosting": _sklearn_gb,
    "HistGradientBoosting": _sklearn_hgb,
    "XGB": _xgboost,
    "LGBM": _lightgbm,
}
