"""pyfunc toys for the shadow tests: a candidate that answers differently, one that is slow and
one that always raises.

They live in an importable module because cloudpickle stores classes of importable modules by
reference: a server subprocess with the repository on ``PYTHONPATH`` unpickles them from here.
"""

from __future__ import annotations

import time

import mlflow.pyfunc
import numpy as np


class OffsetModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """Row sum plus ``offset``, after sleeping ``delay`` seconds per call."""

    def __init__(self, offset: float = 0.0, delay: float = 0.0) -> None:
        self.offset = offset
        self.delay = delay

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        if self.delay:
            time.sleep(self.delay)
        return np.asarray(model_input, dtype=np.float64).sum(axis=1) + self.offset


class RaisingModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """Loads (and warms: the warm-up rows pass) but raises on every other request."""

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        x = np.asarray(model_input, dtype=np.float64)
        if (x > 100).any():  # the request rows of the tests; warm-up rows are small
            raise RuntimeError("candidate broken")
        return x.sum(axis=1)
