"""What the batching layer exposes: priorities, the async predictor contract, observers."""

from __future__ import annotations

from enum import IntEnum
from typing import Protocol

from sibyl.runtime.types import Batch, Prediction


class Priority(IntEnum):
    """Priority lanes; lower value is served first."""

    HIGH = 0
    NORMAL = 1
    LOW = 2

    @classmethod
    def parse(cls, value: object) -> Priority:
        """Read a priority from a protocol value.

        Accepts names (``"high"``, ``"normal"``, ``"low"``) and Triton-style integers where 1 is
        the highest and 0 means the default: ``1`` → HIGH, ``0``/``2`` → NORMAL, ``≥ 3`` → LOW.
        Raises ``ValueError`` with the accepted values otherwise.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                if not value.strip().isdigit():
                    raise ValueError(
                        f"priority must be high, normal, low or an integer ≥ 0, got {value!r}"
                    ) from None
                value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"priority must be high, normal, low or an integer ≥ 0, got {value!r}")
        if value == 1:
            return cls.HIGH
        return cls.NORMAL if value in (0, 2) else cls.LOW


class AsyncPredictor(Protocol):
    """An awaitable predictor: what the service layer calls for one request.

    Contract: safe to call from many tasks of one event loop at once; ``deadline`` is an absolute
    ``loop.time()``; raises ``OverloadedError`` when a bounded queue is full,
    ``DeadlineExceededError`` when the deadline passes first, ``PredictionError`` when the model
    raised for this request's rows.
    """

    async def predict(
        self, batch: Batch, *, priority: Priority = Priority.NORMAL, deadline: float | None = None
    ) -> Prediction:
        """Predict the rows of ``batch``."""
        ...


class BatchObserver(Protocol):
    """Receives batching events (metrics implement it); must be cheap and never raise."""

    def on_batch(self, rows: int, seconds: float, ok: bool) -> None:
        """A model call over ``rows`` rows finished after ``seconds``."""

    def on_queue(self, lane: Priority, rows: int) -> None:
        """Rows waiting in ``lane`` changed to ``rows``."""
