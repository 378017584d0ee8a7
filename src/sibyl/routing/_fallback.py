"""Fallback chain: a predictor that answers from the next member when one fails.

``FallbackPredictor(primary, [previous_version, rule_model, DefaultValue(0)])`` is a
:class:`~sibyl.runtime.types.Predictor` (CONVENTIONS 4: wrap, don't patch). A member is skipped
and the next one tried when it raises, when it gives no answer in time, or when its circuit
breaker is open; :meth:`FallbackPredictor.predict_with_fallback` reports who answered and why.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from sibyl.errors import (
    BackendUnavailableError,
    DeadlineExceededError,
    InvalidInputError,
    PredictionError,
)
from sibyl.routing._breaker import CircuitBreaker
from sibyl.runtime.types import Batch, Prediction, Predictor


class FailureKind(StrEnum):
    """Why a member of a fallback chain did not answer."""

    ERROR = "error"
    TIMEOUT = "timeout"
    CIRCUIT_OPEN = "circuit_open"


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """One member that did not answer: which, why, the error, and the time it cost."""

    member: str
    kind: FailureKind
    error: BaseException
    """What the member raised; a ``DeadlineExceededError`` for a timeout, a
    ``BackendUnavailableError`` for an open circuit."""
    seconds: float


@dataclass(frozen=True, slots=True)
class FallbackResult:
    """A prediction and who made it."""

    prediction: Prediction
    answered_by: str
    """Name of the member that answered."""
    reason: FailureKind | None
    """Why the primary did not answer; ``None`` when it did."""
    failures: tuple[FailedAttempt, ...] = ()
    """Members tried before ``answered_by``, in chain order."""

    @property
    def fell_back(self) -> bool:
        """Whether a member other than the primary answered."""
        return self.reason is not None


@dataclass(frozen=True, slots=True)
class DefaultValue:
    """The last resort: answers every row with the same constant, instantly, never fails.

    ``value`` becomes each row's prediction (a scalar, or an array-like for multi-value rows);
    ``probabilities`` (with ``classes``, same length) becomes each row's probability vector.
    """

    value: Any
    probabilities: tuple[float, ...] | None = None
    classes: tuple[Any, ...] | None = None
    name: str = "default"

    def __post_init__(self) -> None:
        if (self.probabilities is None) != (self.classes is None):
            raise InvalidInputError(
                "DefaultValue needs both probabilities and classes, or neither",
                field="probabilities",
            )
        if self.probabilities is not None and len(self.probabilities) != len(self.classes or ()):
            raise InvalidInputError(
                "DefaultValue probabilities and classes differ in length", field="probabilities"
            )

    def predict(self, batch: Batch) -> Prediction:
        """``len(batch)`` copies of the configured answer."""
        n = len(batch)
        value = np.asarray(self.value)
        if value.dtype == object:
            predictions = np.empty(n, dtype=object)
            predictions[:] = [self.value] * n
        else:
            predictions = np.repeat(value[np.newaxis, ...], n, axis=0)
        if self.probabilities is None:
            return Prediction(predictions)
        probs = np.tile(np.asarray(self.probabilities, dtype=np.float64), (n, 1))
        return Prediction(predictions, probs, self.classes)


class _MemberTimeoutError(Exception):
    pass


class _Member:
    """A predictor in the chain with its name, breaker, and the lock that serializes its calls."""

    def __init__(self, name: str, predictor: Predictor, breaker: CircuitBreaker | None) -> None:
        self.name = name
        self.predictor = predictor
        self.breaker = breaker
        self.is_default = isinstance(predictor, DefaultValue)
        self.lock = threading.Lock()

    def call(self, batch: Batch, until: float | None, pool: _Pool) -> Prediction | FailedAttempt:
        if until is not None and not self.is_default and time.monotonic() >= until:
            return self._failed(FailureKind.TIMEOUT, 0.0, "the deadline had passed")
        if self.breaker is not None and not self.breaker.allow():
            return self._failed(FailureKind.CIRCUIT_OPEN, 0.0, "")
        start = time.monotonic()
        try:
            prediction = self._run(batch, until, pool)
        except _MemberTimeoutError:
            outcome: Prediction | FailedAttempt = self._failed(
                FailureKind.TIMEOUT, time.monotonic() - start, "no answer in time"
            )
        except Exception as exc:
            outcome = FailedAttempt(self.name, FailureKind.ERROR, exc, time.monotonic() - start)
        else:
            outcome = prediction
        if self.breaker is not None:
            self.breaker.record(isinstance(outcome, Prediction), time.monotonic() - start)
        return outcome

    def _run(self, batch: Batch, until: float | None, pool: _Pool) -> Prediction:
        if until is None or self.is_default:
            with self.lock:
                return self._checked(batch)
        future = pool.get().submit(self._locked_until, batch, until)
        done, _ = wait([future], timeout=max(0.0, until - time.monotonic()))
        if not done:
            future.cancel()  # dropped if still queued; a running call finishes unobserved
            raise _MemberTimeoutError
        return future.result()

    def _locked_until(self, batch: Batch, until: float) -> Prediction:
        if not self.lock.acquire(timeout=max(0.0, until - time.monotonic())):
            raise _MemberTimeoutError  # the member is still busy with an abandoned call
        try:
            if time.monotonic() >= until:
                raise _MemberTimeoutError  # the caller has gone; do not start abandoned work
            return self._checked(batch)
        finally:
            self.lock.release()

    def _checked(self, batch: Batch) -> Prediction:
        prediction = self.predictor.predict(batch)
        if len(prediction) != len(batch):
            raise PredictionError(
                f"Fallback member {self.name!r} returned {len(prediction)} rows "
                f"for {len(batch)} inputs"
            )
        return prediction

    def _failed(self, kind: FailureKind, seconds: float, detail: str) -> FailedAttempt:
        error: BaseException
        if kind is FailureKind.CIRCUIT_OPEN:
            error = BackendUnavailableError(
                f"The circuit breaker of {self.name!r} is open; it is probed again after its "
                "cool-down (see its breaker status)"
            )
        else:
            error = DeadlineExceededError(f"{self.name!r} gave no answer in time ({detail})")
        return FailedAttempt(self.name, kind, error, seconds)


class _Pool:
    """Worker threads for calls with a time limit, made on first use."""

    def __init__(self, max_workers: int) -> None:
        self._max_workers = max_workers
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def get(self) -> ThreadPoolExecutor:
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        self._max_workers, thread_name_prefix="sibyl-fallback"
                    )
        return self._executor

    def close(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None


class FallbackPredictor:
    """A predictor over a chain: ``primary``, then each of ``fallbacks`` in order.

    Contract:

    * ``predict``/``predict_with_fallback`` may be called from many threads at once; each member
      still sees one call at a time (a lock per member), as the Predictor contract promises it.
    * A member is skipped when its breaker (``breakers[name]``) does not ``allow()`` the call; it
      fails when it raises any ``Exception``, returns the wrong number of rows, or gives no
      answer before its time limit. Every outcome of a call it made goes to its breaker, with
      the time the caller waited for it (waiting for the member's lock included).
    * Time limits: ``deadline`` (``time.monotonic()`` seconds) bounds every member; the primary
      is also bounded by ``primary_timeout_s``. A member with a limit runs on a worker thread
      (at most ``max_workers``) and is abandoned, not interrupted, when the limit passes; members
      after a passed deadline are skipped, except a :class:`DefaultValue`, which always answers.
      Without any limit members run on the calling thread.
    * When every member fails, the primary's error is raised (a ``DeadlineExceededError`` for a
      timeout, a ``BackendUnavailableError`` for an open circuit), with a note naming the other
      failures.

    ``names`` names the members in chain order (defaults: ``"primary"``, ``"fallback-1"`` …, a
    DefaultValue's own ``name``); they must be unique. ``close()`` stops the worker threads.
    """

    def __init__(
        self,
        primary: Predictor,
        fallbacks: Sequence[Predictor | DefaultValue],
        *,
        names: Sequence[str] | None = None,
        breakers: Mapping[str, CircuitBreaker] | None = None,
        primary_timeout_s: float | None = None,
        max_workers: int = 8,
    ) -> None:
        predictors: list[Predictor] = [primary, *fallbacks]
        labels = list(names) if names is not None else _default_names(predictors)
        if len(labels) != len(predictors) or len(set(labels)) != len(labels):
            raise InvalidInputError(
                f"A fallback chain of {len(predictors)} members needs as many unique names, "
                f"got {labels}",
                field="names",
            )
        breakers = breakers or {}
        self._members = [
            _Member(n, p, breakers.get(n)) for n, p in zip(labels, predictors, strict=True)
        ]
        self.primary_timeout_s = primary_timeout_s
        self._pool = _Pool(max_workers)

    @property
    def names(self) -> tuple[str, ...]:
        """Member names in chain order."""
        return tuple(m.name for m in self._members)

    def predict(self, batch: Batch, *, deadline: float | None = None) -> Prediction:
        """The first answer down the chain (see the class contract)."""
        return self.predict_with_fallback(batch, deadline=deadline).prediction

    def predict_with_fallback(
        self, batch: Batch, *, deadline: float | None = None
    ) -> FallbackResult:
        """The first answer down the chain, with who answered and who failed before it."""
        failures: list[FailedAttempt] = []
        for i, member in enumerate(self._members):
            outcome = member.call(batch, self._limit(i, deadline), self._pool)
            if isinstance(outcome, Prediction):
                reason = failures[0].kind if failures else None
                return FallbackResult(outcome, member.name, reason, tuple(failures))
            failures.append(outcome)
        raise _all_failed(failures)

    def close(self) -> None:
        """Stop the worker threads (calls still running finish unobserved)."""
        self._pool.close()

    def __enter__(self) -> FallbackPredictor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _limit(self, index: int, deadline: float | None) -> float | None:
        if index != 0 or self.primary_timeout_s is None:
            return deadline
        own = time.monotonic() + self.primary_timeout_s
        return own if deadline is None else min(own, deadline)


def _default_names(predictors: Sequence[Predictor]) -> list[str]:
    names = ["primary"]
    for i, p in enumerate(predictors[1:], start=1):
        names.append(p.name if isinstance(p, DefaultValue) else f"fallback-{i}")
    return names


def _all_failed(failures: list[FailedAttempt]) -> BaseException:
    error = failures[0].error
    others = "; ".join(f"{f.member}: {f.kind.value} ({f.error})" for f in failures[1:])
    if others:
        error.add_note(f"every fallback failed too: {others}")
    return error
