"""Circuit breakers on the live path: one per served version, guarding its batcher.

* :func:`new_breaker` makes a version's :class:`~sibyl.routing.CircuitBreaker` from the model's
  ``breaker`` settings, with its state in ``ml_circuit_state`` (read at scrape time, so an open
  circuit that has cooled down reads half-open) and every transition counted in
  ``ml_circuit_transitions_total`` and logged.
* :func:`guarded` is the one way a prediction reaches a version's batcher: ask the breaker,
  call, record the outcome. Only failures that say the version is unwell are recorded
  (:func:`failure_kind`): the model raised or gave no answer in time. Bad input, unknown things
  and shed requests (4xx, 429) are no verdict; a half-open probe that ends that way is handed
  back so another request can probe.

The ModelManager attaches the breaker to the ``ServedVersion`` (``sv.breaker``), so the hot path
pays one attribute read and, while the circuit is closed, a lock-free ``allow()`` plus an
uncontended ``record()``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from sibyl.batching import Priority
from sibyl.errors import (
    CircuitOpenError,
    ConflictError,
    DeadlineExceededError,
    InvalidInputError,
    NotFoundError,
    OverloadedError,
    SibylError,
    UnsupportedMediaTypeError,
)
from sibyl.monitoring import Metrics
from sibyl.routing import BreakerSettings, BreakerState, CircuitBreaker, FailureKind
from sibyl.runtime.types import Batch, Prediction
from sibyl.settings import CircuitSettings, Settings

if TYPE_CHECKING:
    from sibyl.service._served import ServedVersion

log = structlog.get_logger(__name__)

STATE_CODES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
"""The value of ``ml_circuit_state`` per state."""
_NO_VERDICT = (
    InvalidInputError,
    NotFoundError,
    ConflictError,
    OverloadedError,
    UnsupportedMediaTypeError,
)


def breaker_settings(s: CircuitSettings) -> BreakerSettings:
    """The routing breaker's settings from the user-facing ones."""
    slow = None if s.slow_call_ms is None else s.slow_call_ms / 1000
    return BreakerSettings(
        window_s=s.window_s,
        min_calls=s.min_requests,
        max_error_rate=s.max_error_rate,
        max_p95_latency_s=slow,
        max_slow_rate=s.max_slow_rate,
        cool_down_s=s.open_s,
        probe_calls=s.half_open_probes,
    )


def new_breaker(
    settings: Settings,
    metrics: Metrics,
    model: str,
    version: str,
    clock: Callable[[], float] = time.monotonic,
) -> CircuitBreaker | None:
    """The circuit breaker of a freshly served version (``None`` when off for its model)."""
    s = settings.breaker_for(model)
    if not s.enabled:
        return None
    transitions = {
        state: metrics.circuit_transitions.labels(model, version, state.value)
        for state in BreakerState
    }

    def on_transition(old: BreakerState, new: BreakerState, reason: str | None) -> None:
        transitions[new].inc()
        level = log.info if new is BreakerState.CLOSED else log.warning
        level("circuit_" + new.value, model=model, version=version, was=old.value, reason=reason)

    breaker = CircuitBreaker(
        f"{model}:{version}", breaker_settings(s), clock=clock, on_transition=on_transition
    )
    metrics.circuit_state.labels(model, version).set_function(lambda: STATE_CODES[breaker.state])
    return breaker


def failure_kind(exc: SibylError) -> FailureKind | None:
    """What a failure says about the version: an error, a timeout, an open circuit, or nothing
    (``None``: the caller's input, an unknown thing, a shed request)."""
    if isinstance(exc, CircuitOpenError):
        return FailureKind.CIRCUIT_OPEN
    if isinstance(exc, DeadlineExceededError):
        return FailureKind.TIMEOUT
    if isinstance(exc, _NO_VERDICT):
        return None
    return FailureKind.ERROR


async def guarded(
    sv: ServedVersion, batch: Batch, priority: Priority, deadline: float
) -> Prediction:
    """Predict ``batch`` with ``sv`` through its circuit breaker.

    Raises what the batcher raises, and :class:`CircuitOpenError` (with ``retry_after``)
    without calling the version when its circuit refuses the call.
    """
    breaker = sv.breaker
    if breaker is None:
        return await sv.batcher.predict(batch, priority=priority, deadline=deadline)
    if not breaker.allow():
        raise circuit_open_error(sv.name, sv.version, breaker)
    started = time.perf_counter()
    try:
        pred = await sv.batcher.predict(batch, priority=priority, deadline=deadline)
    except SibylError as exc:
        if failure_kind(exc) is None:
            breaker.release()
        else:
            breaker.record(False, time.perf_counter() - started)
        raise
    except BaseException:  # cancelled (the client went away) or a bug: no verdict
        breaker.release()
        raise
    breaker.record(True, time.perf_counter() - started)
    return pred


def circuit_open_error(model: str, version: str, breaker: CircuitBreaker) -> CircuitOpenError:
    """The 503 of a call the circuit refused, with the seconds until it half-opens."""
    wait = breaker.seconds_to_retry()
    reason = breaker.snapshot().reason or "too many failures"
    return CircuitOpenError(
        f"Model '{model}' version {version} is not being called: its circuit breaker is open "
        f"({reason}); retry in {math.ceil(wait) or 1} s, or give the model a fallback chain "
        "(SIBYL_FALLBACKS, see docs/fallback.md)",
        retry_after=max(1.0, math.ceil(wait)),
    )


def describe_circuit(breaker: CircuitBreaker | None) -> dict[str, Any] | None:
    """A breaker's state and window for ``GET /v1/models/{name}`` (``None``: no breaker)."""
    if breaker is None:
        return None
    snap = breaker.snapshot()
    return {
        "state": snap.state.value,
        "reason": snap.reason,
        "retry_in_s": round(breaker.seconds_to_retry(), 3) if snap.retry_at else None,
        "window": {
            "requests": snap.calls,
            "errors": snap.errors,
            "error_rate": snap.error_rate,
            "slow": snap.slow_calls,
            "mean_latency_s": snap.mean_latency_s,
        },
        "times_opened": snap.times_opened,
        "rejected": snap.rejected,
    }


def reset_circuits(versions: list[ServedVersion], version: str | None = None) -> list[str]:
    """Close the circuits of ``versions`` (only ``version`` when given); the versions reset."""
    done = []
    for sv in versions:
        if sv.breaker is not None and (version is None or sv.version == version):
            sv.breaker.reset("reset through the API")
            done.append(sv.version)
    return done
