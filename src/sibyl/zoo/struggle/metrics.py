"""Held-out scores of a struggle model: AUC, Brier score and expected calibration error."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from sibyl.errors import InvalidInputError

ECE_BINS = 10


def expected_calibration_error(
    labels: npt.ArrayLike, probabilities: npt.ArrayLike, bins: int = ECE_BINS
) -> float:
    """ECE over ``bins`` equal-width probability bins: Σ_b (n_b / n)·|mean p_b − mean y_b|.

    Raises :class:`InvalidInputError` for mismatched lengths, no rows or probabilities outside
    [0, 1].
    """
    y, p = _pair(labels, probabilities)
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins).astype(np.float64)
    gaps = np.abs(
        np.bincount(index, weights=p, minlength=bins)
        - np.bincount(index, weights=y, minlength=bins)
    )
    return float(gaps.sum() / counts.sum())


def scores(labels: npt.ArrayLike, probabilities: npt.ArrayLike) -> dict[str, float]:
    """``auc``, ``brier``, ``ece`` and ``n`` of probabilities against 0/1 labels.

    AUC needs both classes (:class:`InvalidInputError` otherwise).
    """
    from sklearn.metrics import brier_score_loss, roc_auc_score

    y, p = _pair(labels, probabilities)
    if np.unique(y).size < 2:
        raise InvalidInputError("AUC needs both struggling and non-struggling rows", field="labels")
    return {
        "auc": float(roc_auc_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "n": float(y.size),
    }


def _pair(labels: npt.ArrayLike, probabilities: npt.ArrayLike) -> tuple[Any, Any]:
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    if y.size != p.size or y.size == 0:
        raise InvalidInputError(
            f"need as many labels as probabilities (> 0), got {y.size} and {p.size}", field="labels"
        )
    if not np.all((p >= 0) & (p <= 1)):
        raise InvalidInputError("probabilities must lie in [0, 1]", field="probabilities")
    return y, p
