"""How a long training call reports progress, notices cancellation and keeps a deadline.

Every public entry point of :mod:`sibyl.training` takes ``progress(fraction, message)`` (a
:data:`Progress`; ``fraction`` in ``[0, 1]``, never decreasing within one call) and
``should_stop()`` (a :data:`StopCheck`). ``should_stop`` is polled between steps — folds,
trials, epochs, candidate models — never inside a library's own fit; when it returns True the
call raises :class:`Cancelled` after leaving durable state consistent (a torch checkpoint is
written, an Optuna trial is told FAIL). Both callables are called from the thread running the
training (and, for tuning with ``n_jobs > 1``, from its worker threads): they must be
thread-safe and cheap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sibyl.errors import SibylError

Progress = Callable[[float, str], None]
"""``progress(fraction, message)``: ``fraction`` of the work done (0…1) and what is going on."""

StopCheck = Callable[[], bool]
"""``should_stop()``: True asks the running call to stop at its next step (it raises
:class:`Cancelled`)."""


def no_progress(fraction: float, message: str) -> None:
    """The default :data:`Progress`: says nothing."""


def never_stop() -> bool:
    """The default :data:`StopCheck`: never asks to stop."""
    return False


class Cancelled(SibylError):  # noqa: N818 - a control-flow signal, like asyncio's
    """``should_stop()`` returned True: the call stopped at a step boundary.

    Whatever was durable stays (checkpoints, finished Optuna trials, MLflow runs marked
    KILLED); resuming with the same arguments continues where it stopped where the docs say so.
    """


def check_stop(should_stop: StopCheck, what: str) -> None:
    """Raise :class:`Cancelled` (naming ``what`` was stopped) when ``should_stop()`` says so."""
    if should_stop():
        raise Cancelled(f"{what} was cancelled; rerun it to start again (or resume)")


def scaled(progress: Progress, start: float, end: float) -> Progress:
    """A :data:`Progress` for a sub-step that maps its ``0…1`` onto ``start…end`` of
    ``progress``."""

    def report(fraction: float, message: str) -> None:
        clipped = min(1.0, max(0.0, fraction))
        progress(start + (end - start) * clipped, message)

    return report


class MonotonicProgress:
    """Wraps a :data:`Progress` so fractions never go backwards (several threads report)."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._lock = threading.Lock()
        self._last = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        with self._lock:
            self._last = max(self._last, min(1.0, max(0.0, fraction)))
            value = self._last
        self._progress(value, message)


@dataclass
class Deadline:
    """A wall-clock budget from creation on (``time.monotonic``); ``seconds`` None: none."""

    seconds: float | None
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self.started

    def remaining(self) -> float:
        """Seconds left (``inf`` without a budget; may be negative once past)."""
        if self.seconds is None:
            return float("inf")
        return self.seconds - self.elapsed()

    def expired(self, margin: float = 0.0) -> bool:
        """True when fewer than ``margin`` seconds remain."""
        return self.remaining() <= margin

    def fraction(self) -> float:
        """Share of the budget used (0 without a budget)."""
        if not self.seconds:
            return 0.0
        return min(1.0, self.elapsed() / self.seconds)
