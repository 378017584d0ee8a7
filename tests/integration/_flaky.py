"""A scikit-learn classifier that fails at predict time on a marker value, for ensemble tests.

Kept in an importable module so cloudpickle stores the class by reference: the server process
(``PYTHONPATH`` = the repository) imports it when it loads the logged model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from tests.toys import FAIL_MARKER


class FlakyClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Logistic regression that raises when any input value equals ``FAIL_MARKER``."""

    def __init__(self, C: float = 1.0) -> None:  # noqa: N803 (scikit-learn's name)
        self.C = C

    def fit(self, x: Any, y: Any) -> FlakyClassifier:
        self.model_ = LogisticRegression(C=self.C, max_iter=200).fit(x, y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, x: Any) -> Any:
        self._check(x)
        return self.model_.predict_proba(x)

    def predict(self, x: Any) -> Any:
        self._check(x)
        return self.model_.predict(x)

    @staticmethod
    def _check(x: Any) -> None:
        if (np.asarray(x, dtype=np.float64) == FAIL_MARKER).any():
            raise RuntimeError("flaky classifier failure")
