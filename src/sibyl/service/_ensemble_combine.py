"""Combining the answers of an ensemble's members: pure functions over :class:`Prediction`s.

* ``mean_proba`` (classifiers): each member's probability columns are aligned by class label
  into the ensemble's class order (the first answering member's), then averaged with the
  members' weights renormalised over those that answered; the label of a row is the class of
  its largest mean probability.
* ``mean`` (regressors): the weighted mean of the predicted values, same weights.

:func:`check_answer` says why a member's answer cannot be combined (no probabilities, other
classes, another row count, values that are not numbers); the caller then treats that member
as failed. :class:`MemberOutcome` is how one member fared, reported with the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from sibyl.runtime.types import Prediction, Task


class Combine(StrEnum):
    """How member answers are combined."""

    MEAN_PROBA = "mean_proba"
    """Weighted mean of class probabilities aligned by label (classifiers)."""
    MEAN = "mean"
    """Weighted mean of predicted values (regressors)."""

    @classmethod
    def for_task(cls, task: Task) -> Combine:
        """What ``auto`` means for ``task`` (classifier → mean_proba, regressor → mean)."""
        return cls.MEAN_PROBA if task is Task.CLASSIFIER else cls.MEAN


@dataclass(frozen=True, slots=True)
class MemberOutcome:
    """How one member fared in one ensemble prediction."""

    name: str
    model: str
    ref: str
    """The member's configured version number or alias."""
    weight: float
    """The member's configured weight."""
    version: str | None = None
    """The version that answered (``None`` when the member failed)."""
    share: float = 0.0
    """The member's weight in this answer, renormalised over the members that answered."""
    error: str | None = None
    """Why the member did not count (``None`` when it answered)."""

    @property
    def ok(self) -> bool:
        """The member's answer is part of the ensemble's."""
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        """The member as the native protocol reports it."""
        out: dict[str, Any] = {
            "name": self.name,
            "model": self.model,
            "ref": self.ref,
            "version": self.version,
            "weight": self.weight,
            "share": self.share,
            "status": "ok" if self.ok else "failed",
        }
        if self.error is not None:
            out["error"] = self.error
        return out


def check_answer(
    pred: Prediction, combine: Combine, rows: int | None, classes: tuple[Any, ...] | None
) -> str | None:
    """Why ``pred`` cannot be combined (``None`` when it can): ``rows`` and ``classes`` are
    those of the answers accepted so far (``None`` before the first)."""
    if rows is not None and len(pred) != rows:
        return f"answered {len(pred)} rows for {rows}"
    if combine is Combine.MEAN:
        values = np.asarray(pred.predictions)
        if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.bool_):
            return f"answered values of type {values.dtype}, not numbers to average"
        return None
    if pred.probabilities is None or pred.classes is None:
        return "answered without class probabilities (mean_proba needs predict_proba)"
    if len(pred.classes) != np.shape(pred.probabilities)[-1]:
        return "answered probabilities that do not match its classes"
    if classes is not None and set(pred.classes) != set(classes):
        return f"answered classes {list(pred.classes)}, the ensemble's are {list(classes)}"
    return None


def combine(preds: Sequence[Prediction], weights: Sequence[float], how: Combine) -> Prediction:
    """The weighted mean of ``preds`` (already accepted by :func:`check_answer`); ``weights``
    are renormalised to sum to 1."""
    shares = normalise(weights)
    if how is Combine.MEAN:
        total = sum(
            (
                s * np.asarray(p.predictions, dtype=np.float64)
                for p, s in zip(preds, shares, strict=True)
            ),
            start=np.zeros(np.shape(preds[0].predictions)),
        )
        return Prediction(total)
    order = preds[0].classes
    assert order is not None  # check_answer: classifiers answer with classes
    column = {label: i for i, label in enumerate(order)}
    total = np.zeros((len(preds[0]), len(order)))
    for pred, share in zip(preds, shares, strict=True):
        assert pred.classes is not None
        assert pred.probabilities is not None
        cols = [column[label] for label in pred.classes]
        total[:, cols] += share * np.asarray(pred.probabilities, dtype=np.float64)
    labels = np.asarray(order)[total.argmax(axis=1)]
    return Prediction(labels, total, tuple(order))


def normalise(weights: Sequence[float]) -> list[float]:
    """``weights`` divided by their sum (which must be > 0)."""
    total = sum(weights)
    return [w / total for w in weights]


__all__ = ["Combine", "MemberOutcome", "check_answer", "combine", "normalise"]
