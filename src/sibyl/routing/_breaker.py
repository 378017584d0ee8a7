"""Circuit breaker per model version: stop calling a version that fails or is slow, probe later.

States (``closed → open → half_open → closed``)::

    closed     every call is allowed; outcomes go into a sliding window. When the window holds
               at least ``min_calls`` calls and the error rate, the p95 latency or the mean
               latency is above its limit, the circuit opens.
    open       no call is allowed for ``cool_down_s``; then the circuit is half-open.
    half_open  ``probe_calls`` calls are allowed through. The first failed (or too slow) probe
               re-opens the circuit; when all of them succeed it closes with an empty window.
               A probe whose outcome is not recorded within ``probe_timeout_s`` counts as failed;
               a probe handed back with ``release()`` (no verdict: bad input, shed, cancelled)
               lets another call probe.

``reset()`` closes a circuit by hand. The clock is injectable (``Callable[[], float]``, seconds)
so tests drive time exactly; ``on_transition(old, new, reason)`` hears every state change.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sibyl.errors import InvalidInputError
from sibyl.routing._window import Window

Clock = Callable[[], float]


class BreakerState(StrEnum):
    """Where a circuit breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """When a version's circuit opens and how it recovers."""

    window_s: float = 30.0
    """Error rate and latency are measured over the last ``window_s`` seconds (to within one
    bucket, ``window_s / window_buckets``)."""
    window_buckets: int = 10
    """Slices the window moves by; memory and the cost of a check grow with it, not with traffic."""
    min_calls: int = 20
    """Calls the window must hold before it can open the circuit (no verdict on 2 calls)."""
    max_error_rate: float = 0.5
    """Open when the share of failed calls (errors and timeouts) in the window is above this."""
    max_p95_latency_s: float | None = None
    """Open when the window's p95 latency (nearest rank) is above this; ``None``: not checked.
    Also the longest a half-open probe may take to count as a success. Calls slower than this
    are *slow*; ``max_slow_rate`` generalises the p95 to any share of slow calls."""
    max_slow_rate: float = 0.05
    """Open when the share of slow calls (slower than ``max_p95_latency_s``) in the window is
    above this; the default 0.05 is exactly "the p95 latency is above the limit"."""
    max_mean_latency_s: float | None = None
    """Open when the window's mean latency is above this; ``None``: not checked."""
    cool_down_s: float = 30.0
    """How long an open circuit rejects every call before it half-opens."""
    probe_calls: int = 1
    """Calls let through while half-open; all must succeed to close the circuit."""
    probe_timeout_s: float = 30.0
    """A half-open probe with no recorded outcome this long after the last probe was let through
    counts as failed (the circuit re-opens)."""

    def __post_init__(self) -> None:
        checks = {
            "window_s": self.window_s > 0,
            "window_buckets": self.window_buckets >= 1,
            "min_calls": self.min_calls >= 1,
            "max_error_rate": 0 <= self.max_error_rate <= 1,
            "max_p95_latency_s": self.max_p95_latency_s is None or self.max_p95_latency_s > 0,
            "max_slow_rate": 0 <= self.max_slow_rate < 1,
            "max_mean_latency_s": self.max_mean_latency_s is None or self.max_mean_latency_s > 0,
            "cool_down_s": self.cool_down_s >= 0,
            "probe_calls": self.probe_calls >= 1,
            "probe_timeout_s": self.probe_timeout_s > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise InvalidInputError(
                    f"Breaker setting {name}={getattr(self, name)!r} is out of range",
                    field=name,
                )


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """A breaker's state and window at one instant, for metrics and ``/v1/...`` status."""

    name: str
    state: BreakerState
    state_since: float
    """Clock time of the last transition."""
    retry_at: float | None
    """When an open circuit half-opens; ``None`` unless open."""
    calls: int
    errors: int
    slow_calls: int
    """Calls in the window slower than ``max_p95_latency_s`` (0 when that limit is unset)."""
    mean_latency_s: float | None
    times_opened: int
    """Transitions to open since the breaker was made (a counter)."""
    rejected: int
    """Calls refused while open or half-open (a counter)."""
    reason: str | None
    """Why the circuit last opened or closed."""

    @property
    def error_rate(self) -> float | None:
        """Share of failed calls in the window; ``None`` when it is empty."""
        return self.errors / self.calls if self.calls else None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return {
            "name": self.name,
            "state": self.state.value,
            "state_since": self.state_since,
            "retry_at": self.retry_at,
            "calls": self.calls,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "slow_calls": self.slow_calls,
            "mean_latency_s": self.mean_latency_s,
            "times_opened": self.times_opened,
            "rejected": self.rejected,
            "reason": self.reason,
        }


Transition = Callable[[BreakerState, BreakerState, str | None], None]
"""``on_transition(old, new, reason)``: called with the breaker's lock held, so it must be quick
and must not call back into the breaker (count a metric, write a log line)."""


class CircuitBreaker:
    """The circuit of one model version.

    Thread-safe: ``allow``, ``record``, ``release``, ``reset``, ``state`` and ``snapshot`` may be
    called from the event loop and worker threads at once (one lock; ``allow`` takes no lock
    while closed). Callers ask ``allow()`` before a call and, when it said yes, either
    ``record()`` its outcome or ``release()`` it (the call says nothing about the version) once.
    While half-open, outcomes beyond the probes granted (calls started before the circuit
    opened) are ignored; so are outcomes recorded while open.
    """

    def __init__(
        self,
        name: str,
        settings: BreakerSettings | None = None,
        *,
        clock: Clock = time.monotonic,
        on_transition: Transition | None = None,
    ) -> None:
        self.name = name
        self.settings = settings or BreakerSettings()
        self._clock = clock
        self._on_transition = on_transition
        self._lock = threading.Lock()
        self._window = Window(self.settings.window_s, self.settings.window_buckets)
        self._state = BreakerState.CLOSED
        self._since = clock()
        self._probes_granted = 0
        self._probes_passed = 0
        self._probe_granted_at = 0.0
        self._times_opened = 0
        self._rejected = 0
        self._reason: str | None = None

    @property
    def state(self) -> BreakerState:
        """The current state (an open circuit past its cool-down reads as half-open)."""
        if self._state is BreakerState.CLOSED:
            return BreakerState.CLOSED
        with self._lock:
            return self._advance(self._clock())

    def allow(self) -> bool:
        """Whether a call may go to this version now (a yes while half-open is a probe)."""
        if self._state is BreakerState.CLOSED:
            return True
        with self._lock:
            now = self._clock()
            state = self._advance(now)
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.HALF_OPEN and self._probes_granted < self.settings.probe_calls:
                self._probes_granted += 1
                self._probe_granted_at = now
                return True
            self._rejected += 1
            return False

    def record(self, success: bool, latency_s: float) -> None:
        """The outcome of a call that ``allow()`` let through (timeouts are failures)."""
        with self._lock:
            now = self._clock()
            state = self._advance(now)
            if state is BreakerState.CLOSED:
                self._window.add(now, success, self._is_slow(latency_s), latency_s)
                self._check(now)
            elif state is BreakerState.HALF_OPEN:
                self._record_probe(now, success, latency_s)

    def release(self) -> None:
        """A call ``allow()`` let through ended without a verdict on the version (bad input,
        shed, cancelled): a half-open probe is handed back so another call can probe."""
        if self._state is BreakerState.CLOSED:
            return
        with self._lock:
            if self._state is BreakerState.HALF_OPEN and self._probes_granted > self._probes_passed:
                self._probes_granted -= 1

    def reset(self, reason: str = "reset by hand") -> None:
        """Close the circuit now with an empty window (counters are kept)."""
        with self._lock:
            self._window.clear()
            self._probes_granted = self._probes_passed = 0
            self._move(BreakerState.CLOSED, self._clock(), reason)

    def seconds_to_retry(self) -> float:
        """Seconds until an open circuit half-opens (0 when it is not open)."""
        if self._state is BreakerState.CLOSED:
            return 0.0
        with self._lock:
            now = self._clock()
            if self._advance(now) is not BreakerState.OPEN:
                return 0.0
            return max(0.0, self._since + self.settings.cool_down_s - now)

    def snapshot(self) -> BreakerSnapshot:
        """State, window totals and counters at this instant."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            t = self._window.totals(now)
            retry_at = None
            if self._state is BreakerState.OPEN:
                retry_at = self._since + self.settings.cool_down_s
            return BreakerSnapshot(
                name=self.name,
                state=self._state,
                state_since=self._since,
                retry_at=retry_at,
                calls=t.calls,
                errors=t.errors,
                slow_calls=t.slow,
                mean_latency_s=t.latency / t.calls if t.calls else None,
                times_opened=self._times_opened,
                rejected=self._rejected,
                reason=self._reason,
            )

    # -- transitions (called with the lock held) ---------------------------------------------

    def _advance(self, now: float) -> BreakerState:
        """Apply the transitions time alone causes; return the state now."""
        s = self.settings
        if self._state is BreakerState.OPEN and now >= self._since + s.cool_down_s:
            self._move(BreakerState.HALF_OPEN, now, self._reason)
            self._probes_granted = self._probes_passed = 0
        elif (
            self._state is BreakerState.HALF_OPEN
            and self._probes_granted > self._probes_passed
            and now >= self._probe_granted_at + s.probe_timeout_s
        ):
            self._open(now, f"a probe recorded no outcome within {s.probe_timeout_s:g} s")
        return self._state

    def _record_probe(self, now: float, success: bool, latency_s: float) -> None:
        if self._probes_granted <= self._probes_passed:
            return  # a call from before the circuit opened, not a probe
        limit = self.settings.max_p95_latency_s
        if not success or (limit is not None and latency_s > limit):
            what = "failed" if not success else f"took {latency_s:.3g} s (limit {limit:g} s)"
            self._open(now, f"a half-open probe {what}")
            return
        self._probes_passed += 1
        if self._probes_passed >= self.settings.probe_calls:
            self._window.clear()
            self._move(BreakerState.CLOSED, now, f"{self._probes_passed} probe(s) succeeded")

    def _check(self, now: float) -> None:
        """Open when the window (rolled to ``now`` by the ``add`` just made) is over a limit;
        the reason is formatted only then (this runs on every recorded call)."""
        s = self.settings
        calls, errors, slow, latency = self._window.live()
        if calls < s.min_calls:
            return
        if errors / calls > s.max_error_rate:
            where = self._where(calls)
            self._open(
                now, f"error rate {errors / calls:.1%} {where} is above {s.max_error_rate:.1%}"
            )
        elif s.max_p95_latency_s is not None and slow > _allowed(s.max_slow_rate, calls):
            where, limit = self._where(calls), s.max_p95_latency_s
            what = (
                f"p95 latency {where} is above {limit:g} s"
                if s.max_slow_rate == 0.05
                else f"{slow / calls:.1%} of calls {where} took over {limit:g} s "
                f"(limit {s.max_slow_rate:.1%})"
            )
            self._open(now, what)
        elif s.max_mean_latency_s is not None and latency / calls > s.max_mean_latency_s:
            mean, where = latency / calls, self._where(calls)
            self._open(
                now, f"mean latency {mean:.3g} s {where} is above {s.max_mean_latency_s:g} s"
            )

    def _where(self, calls: int) -> str:
        return f"over {calls} calls in the last {self.settings.window_s:g} s"

    def _open(self, now: float, reason: str) -> None:
        self._times_opened += 1
        self._move(BreakerState.OPEN, now, reason)

    def _move(self, state: BreakerState, now: float, reason: str | None) -> None:
        old = self._state
        self._state, self._since, self._reason = state, now, reason
        if self._on_transition is not None and old is not state:
            self._on_transition(old, state, reason)

    def _is_slow(self, latency_s: float) -> bool:
        limit = self.settings.max_p95_latency_s
        return limit is not None and latency_s > limit

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._state.value})"


def _allowed(rate: float, n: int) -> int:
    """Most slow calls among ``n`` that keep the slow share at or below ``rate``.

    With ``rate = 1 - q`` this is ``n`` minus the 1-based nearest rank of the ``q`` quantile: the
    quantile is above a limit exactly when more values than this are above it, which is what the
    window counts (no latencies are kept).
    """
    return math.floor(rate * n + 1e-9)


class CircuitBreakers:
    """One :class:`CircuitBreaker` per version key, made on first use with shared settings.

    Thread-safe. ``discard`` forgets a key (an unloaded version); a later ``get`` starts fresh.
    """

    def __init__(
        self, settings: BreakerSettings | None = None, *, clock: Clock = time.monotonic
    ) -> None:
        self.settings = settings or BreakerSettings()
        self._clock = clock
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, key: str) -> CircuitBreaker:
        """The breaker of ``key`` (e.g. ``"churn/3"``), made closed on first use."""
        breaker = self._breakers.get(key)
        if breaker is None:
            with self._lock:
                breaker = self._breakers.setdefault(
                    key, CircuitBreaker(key, self.settings, clock=self._clock)
                )
        return breaker

    def discard(self, key: str) -> None:
        """Forget ``key``'s breaker (no error when there is none)."""
        with self._lock:
            self._breakers.pop(key, None)

    def snapshots(self) -> dict[str, BreakerSnapshot]:
        """A snapshot of every breaker, by key."""
        with self._lock:
            breakers = list(self._breakers.values())
        return {b.name: b.snapshot() for b in breakers}
