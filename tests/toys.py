"""Toy predictors for testing the serving machinery (real objects, not mocks).

Plain ``Predictor`` classes for in-process tests and MLflow ``PythonModel`` wrappers so the same
toys can be registered in a real MLflow registry and served by a real server subprocess.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from sibyl.runtime.types import Batch, Prediction

FAIL_MARKER = -999.0


def _array(batch: Batch) -> np.ndarray[Any, Any]:
    return np.asarray(batch, dtype=np.float64)


class EchoPredictor:
    """Predicts the row sum; records every batch size it saw."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.threads: set[str] = set()

    def predict(self, batch: Batch) -> Prediction:
        x = _array(batch)
        self.batches.append(len(x))
        self.threads.add(threading.current_thread().name)
        return Prediction(x.sum(axis=1))


class SlowPredictor(EchoPredictor):
    """Echo that sleeps ``delay`` seconds per call (not per row: like a batched model)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def predict(self, batch: Batch) -> Prediction:
        time.sleep(self.delay)
        return super().predict(batch)


class FailingPredictor(EchoPredictor):
    """Echo that raises when any value equals ``FAIL_MARKER``."""

    def predict(self, batch: Batch) -> Prediction:
        if (_array(batch) == FAIL_MARKER).any():
            raise RuntimeError("toy model failure")
        return super().predict(batch)


class SwitchPredictor(EchoPredictor):
    """Echo that raises while ``failing`` is true (the test flips it); counts every call."""

    def __init__(self, failing: bool = False) -> None:
        super().__init__()
        self.failing = failing
        self.calls = 0

    def predict(self, batch: Batch) -> Prediction:
        self.calls += 1
        if self.failing:
            raise RuntimeError("toy model failure (switched on)")
        return super().predict(batch)


class ClassifierToy:
    """Two-class 'classifier': P(class 1) = sigmoid(row sum)."""

    def predict(self, batch: Batch) -> Prediction:
        s = _array(batch).sum(axis=1)
        p1 = 1 / (1 + np.exp(-s))
        probs = np.column_stack([1 - p1, p1])
        return Prediction((p1 > 0.5).astype(np.int64), probs, (0, 1))


try:  # MLflow wrappers (pyfunc) for registering the toys
    import mlflow.pyfunc

    class EchoModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        """pyfunc: row sum; sleeps ``delay`` s; raises on FAIL_MARKER."""

        def __init__(self, delay: float = 0.0) -> None:
            self.delay = delay

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            x = np.asarray(model_input, dtype=np.float64)
            if (x == FAIL_MARKER).any():
                raise RuntimeError("toy model failure")
            if self.delay:
                time.sleep(self.delay)
            return x.sum(axis=1)

    class FlagModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        """pyfunc: row sum + ``offset``; raises while the file ``fail_flag`` exists and sleeps
        ``delay`` s while ``slow_flag`` exists (a test toggles a served model's health)."""

        def __init__(self, fail_flag: str, slow_flag: str = "", delay: float = 0.0,
                     offset: float = 0.0) -> None:
            self.fail_flag, self.slow_flag = fail_flag, slow_flag
            self.delay, self.offset = delay, offset

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            import os

            if os.path.exists(self.fail_flag):
                raise RuntimeError(f"toy model failure ({self.fail_flag} exists)")
            if self.slow_flag and os.path.exists(self.slow_flag):
                time.sleep(self.delay)
            return np.asarray(model_input, dtype=np.float64).sum(axis=1) + self.offset

    class BrokenModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        """pyfunc whose loading fails (load_context raises)."""

        def load_context(self, context: Any) -> None:
            raise RuntimeError("this model cannot be loaded")

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return model_input
except ImportError:  # pragma: no cover
    pass
