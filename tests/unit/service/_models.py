"""A pyfunc toy whose loading the test controls: counts its loads and can be held at a gate.

Kept in an importable module so cloudpickle stores the class by reference: the instance the
manager loads in its worker thread shares ``LOADS`` and ``GATES`` with the test.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import mlflow.pyfunc
import numpy as np

LOADS: Counter[str] = Counter()
"""Completed ``load_context`` calls per probe key."""
GATES: dict[str, threading.Event] = {}
"""A probe whose key is here waits (≤ 10 s) for the event before its load finishes."""


class ProbeModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """pyfunc: row sum (like ``EchoModel``); loading counts and optionally waits at a gate."""

    def __init__(self, key: str) -> None:
        self.key = key

    def load_context(self, context: Any) -> None:
        gate = GATES.get(self.key)
        if gate is not None and not gate.wait(10):
            raise RuntimeError(f"probe {self.key}: gate never opened")
        LOADS[self.key] += 1

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return np.asarray(model_input, dtype=np.float64).sum(axis=1)
