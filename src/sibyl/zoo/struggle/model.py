"""The incremental logistic regression for struggle, with interventions from its top features.

:class:`StruggleModel` is a logistic regression trained by SGD on the log loss
(``SGDClassifier(loss="log_loss")``), so it learns from labelled feedback with
:meth:`StruggleModel.partial_fit` as it does from the first batch. Design choices:

* **Inputs are the observable features** (:data:`~sibyl.zoo.struggle.features.FEATURES`);
  ``accuracy`` enters as its smoothed log-odds ``log((a·n + 1) / ((1 − a)·n + 1))`` (``n`` =
  attempts), which is linear in the evidence and defined for ``n = 0``.
* **Standardisation is frozen** after :meth:`StruggleModel.fit`: updates move the coefficients,
  never the scale they are read in, so explanations stay comparable across versions.
* **Sign constraints** (:data:`SIGNS`): after every pass a coefficient with the wrong sign (e.g.
  a longer wrong streak *lowering* the risk, which collinear features can produce) is set to 0.
  Every positive contribution then has a meaning a teacher can act on.
* **Calibration** comes from the log loss itself (no separate layer): Brier score and expected
  calibration error are reported on held-out students, and updates keep minimising the log loss.

Explanations: a row's contribution of feature ``j`` is ``coef_j · z_j`` (``z`` the standardised
design value); the features with the largest positive contributions are the reasons, and each
maps to an intervention (:data:`~sibyl.zoo.struggle.interventions.FEATURE_INTERVENTIONS`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from sibyl.errors import InvalidInputError
from sibyl.zoo.struggle.features import FEATURES, check_features
from sibyl.zoo.struggle.interventions import FEATURE_INTERVENTIONS, output_frame

FloatArray = npt.NDArray[np.float64]

SIGNS: dict[str, int] = {
    "attempts": -1,
    "accuracy": -1,
    "rolling_accuracy": -1,
    "right_streak": -1,
    "wrong_streak": 1,
    "attempts_since_correct": 1,
}
"""Allowed sign of each coefficient (+1: more of it can only raise the struggle risk)."""
EPOCHS = 5
TOP_REASONS = 2


def design(checked: pd.DataFrame) -> FloatArray:
    """The regression inputs of validated features: ``FEATURES`` in order, ``accuracy`` as
    smoothed log-odds."""
    x = checked[list(FEATURES)].to_numpy(dtype=np.float64, copy=True)
    n, a = x[:, 0], x[:, 1]
    x[:, 1] = np.log((a * n + 1.0) / ((1.0 - a) * n + 1.0))
    return x


def check_labels(labels: Any, n_rows: int) -> npt.NDArray[np.int64]:
    """0/1 labels (bool or int) for ``n_rows`` rows; :class:`InvalidInputError` otherwise."""
    y = np.asarray(labels).ravel()
    if y.size != n_rows:
        raise InvalidInputError(f"got {y.size} labels for {n_rows} rows", field="labels")
    if y.dtype == object or not np.isin(y.astype(np.float64), (0.0, 1.0)).all():
        raise InvalidInputError("labels must be 0/1 or booleans", field="labels")
    return y.astype(np.int64)


def _xy(frame: Any, labels: Any) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Design matrix and labels of a non-empty labelled batch."""
    x = design(check_features(frame))
    if len(x) == 0:
        raise InvalidInputError("no rows to learn from", field="features")
    return x, check_labels(labels, len(x))


class StruggleModel:
    """Calibrated logistic regression over the struggle features that keeps learning.

    Not thread-safe while being updated: call :meth:`partial_fit` on a copy (as
    ``update_from_feedback`` does) and serve the result as a new version. Prediction alone is
    safe to share. Bad inputs or labels raise :class:`InvalidInputError` naming the field.
    """

    def __init__(
        self, *, alpha: float = 1e-5, eta0: float = 0.02, threshold: float = 0.5, seed: int = 0
    ) -> None:
        self.alpha, self.eta0, self.threshold, self.seed = alpha, eta0, threshold, seed
        self.mean: FloatArray | None = None
        self.scale: FloatArray | None = None
        self.classifier: Any = None
        self.n_seen = 0

    def fit(self, frame: Any, labels: Any, *, epochs: int = EPOCHS) -> StruggleModel:
        """Fix the standardisation on ``frame`` and learn from scratch in ``epochs`` shuffled
        passes (sign constraints applied after each)."""
        from sklearn.linear_model import SGDClassifier

        x, y = _xy(frame, labels)
        self.mean = x.mean(axis=0)
        self.scale = np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
        self.classifier = SGDClassifier(
            loss="log_loss",
            alpha=self.alpha,
            learning_rate="constant",
            eta0=self.eta0,
            random_state=self.seed,
        )
        self.n_seen = 0
        rng = np.random.default_rng(self.seed)
        for epoch in range(epochs):
            # a halving step per pass: fast start, then a final iterate close to the optimum
            self.classifier.set_params(eta0=self.eta0 * 0.5**epoch)
            self._learn(x, y, rng.permutation(len(x)))
        self.classifier.set_params(eta0=self.eta0)
        return self

    def partial_fit(self, frame: Any, labels: Any) -> StruggleModel:
        """One SGD pass over labelled feedback, in the given order; the first call on an
        unfitted model is a one-pass :meth:`fit`."""
        if self.classifier is None:
            return self.fit(frame, labels, epochs=1)
        x, y = _xy(frame, labels)
        self._learn(x, y, np.arange(len(x)))
        return self

    def _learn(self, x: FloatArray, y: npt.NDArray[np.int64], order: npt.NDArray[Any]) -> None:
        self.classifier.partial_fit(self._standardise(x[order]), y[order], classes=[0, 1])
        coef = self.classifier.coef_[0]
        signs = np.array([SIGNS[name] for name in FEATURES], dtype=np.float64)
        coef[coef * signs < 0] = 0.0
        self.n_seen += len(x)

    def _standardise(self, x: FloatArray) -> FloatArray:
        if self.mean is None or self.scale is None:
            raise InvalidInputError("the model is not fitted yet; call fit first", field="model")
        return np.asarray((x - self.mean) / self.scale, dtype=np.float64)

    def _z(self, frame: Any) -> tuple[pd.DataFrame, FloatArray]:
        """Validated features and their standardised design matrix."""
        checked = check_features(frame)
        return checked, self._standardise(design(checked))

    def _proba(self, z: FloatArray) -> FloatArray:
        if len(z) == 0:  # sklearn refuses empty arrays
            return np.zeros(0, dtype=np.float64)
        return np.asarray(self.classifier.predict_proba(z)[:, 1], dtype=np.float64)

    def predict_proba(self, frame: Any) -> FloatArray:
        """P(struggling) per row."""
        return self._proba(self._z(frame)[1])

    def contributions(self, frame: Any) -> FloatArray:
        """``(n, len(FEATURES))``: each feature's ``coef · z`` (its push on the log-odds)."""
        return np.asarray(self._z(frame)[1] * self.classifier.coef_[0], dtype=np.float64)

    def coefficients(self) -> dict[str, float]:
        """Coefficients on the standardised inputs, by feature, and the ``intercept``."""
        coef = dict(zip(FEATURES, map(float, self.classifier.coef_[0]), strict=True))
        return {**coef, "intercept": float(self.classifier.intercept_[0])}

    def predict(self, frame: Any) -> pd.DataFrame:
        """One :data:`~sibyl.zoo.struggle.interventions.OUTPUTS` row per input row.

        ``reasons``: up to ``TOP_REASONS`` features with positive contributions, largest first,
        as ``"feature=value (+contribution)"``; ``interventions``: their actions, for rows at or
        above ``threshold`` only (an empty list otherwise).
        """
        checked, z = self._z(frame)
        p = self._proba(z)
        pushes = z * self.classifier.coef_[0]
        struggling = p >= self.threshold
        reasons, actions = [], []
        for i in range(len(checked)):
            top = _top_features(pushes[i])
            reasons.append([f"{f}={checked[f].iloc[i]:g} (+{pushes[i, j]:.2f})" for j, f in top])
            actions.append(
                [FEATURE_INTERVENTIONS[f].value for _, f in top] if struggling[i] else []
            )
        return output_frame(p, struggling, actions, reasons, index=checked.index)


def _top_features(pushes: FloatArray) -> list[tuple[int, str]]:
    """(index, name) of the up to ``TOP_REASONS`` largest positive contributions."""
    order = np.argsort(-pushes, kind="stable")[:TOP_REASONS]
    return [(int(j), FEATURES[j]) for j in order if pushes[j] > 0]
