"""Circuit breaker under a controllable clock, and under threads."""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from sibyl.errors import InvalidInputError
from sibyl.routing import BreakerSettings, BreakerState, CircuitBreaker, CircuitBreakers


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def breaker(clock: FakeClock, **settings: object) -> CircuitBreaker:
    defaults: dict[str, object] = {"min_calls": 10, "max_error_rate": 0.5, "cool_down_s": 30.0}
    return CircuitBreaker("churn/3", BreakerSettings(**{**defaults, **settings}), clock=clock)  # type: ignore[arg-type]


def record(b: CircuitBreaker, ok: int = 0, failed: int = 0, latency: float = 0.01) -> None:
    for _ in range(ok):
        b.record(True, latency)
    for _ in range(failed):
        b.record(False, latency)


def opened(clock: FakeClock, **settings: object) -> CircuitBreaker:
    b = breaker(clock, **settings)
    record(b, failed=10)
    assert b.state is BreakerState.OPEN
    return b


def test_stays_closed_until_the_window_holds_min_calls(clock: FakeClock) -> None:
    b = breaker(clock)
    record(b, failed=9)
    assert b.state is BreakerState.CLOSED and b.allow()
    record(b, failed=1)
    assert b.state is BreakerState.OPEN


def test_opens_when_the_error_rate_is_above_the_threshold(clock: FakeClock) -> None:
    b = breaker(clock)
    record(b, ok=5, failed=5)  # 50 % is not above 50 %
    assert b.state is BreakerState.CLOSED
    record(b, failed=1)  # 6 / 11
    assert b.state is BreakerState.OPEN
    snap = b.snapshot()
    assert snap.times_opened == 1
    assert snap.reason is not None and "error rate" in snap.reason
    assert snap.retry_at == clock.now + 30.0


def test_failures_older_than_the_window_do_not_count(clock: FakeClock) -> None:
    b = breaker(clock, window_s=30.0)
    record(b, failed=6)
    clock.advance(31.0)
    record(b, ok=5, failed=5)  # 50 % in the window; 11 / 16 if the old failures still counted
    assert b.state is BreakerState.CLOSED
    assert b.snapshot().calls == 10


def test_window_totals_follow_the_sliding_window_over_a_long_run(clock: FakeClock) -> None:
    # window 30 s in 10 buckets of 3 s: a call counts while its bucket is one of the last 10
    b = breaker(clock, window_s=30.0, window_buckets=10, max_error_rate=1.0)
    rng = random.Random(4)
    seen: list[tuple[float, bool]] = []
    for _ in range(400):
        clock.advance(rng.choice([0.1, 0.5, 1.0, 2.9, 7.0]))
        ok = rng.random() < 0.7
        b.record(ok, 0.01)
        seen.append((clock.now, ok))
        current = int(clock.now // 3.0)
        live = [ok for t, ok in seen if int(t // 3.0) > current - 10]
        snap = b.snapshot()
        assert (snap.calls, snap.errors) == (len(live), live.count(False))
    clock.advance(31.0)
    assert b.snapshot().calls == 0 and b.snapshot().mean_latency_s is None


def test_open_circuit_rejects_calls_and_counts_them(clock: FakeClock) -> None:
    b = opened(clock)
    assert [b.allow() for _ in range(5)] == [False] * 5
    assert b.snapshot().rejected == 5
    record(b, ok=100)  # stragglers from before it opened change nothing
    assert b.state is BreakerState.OPEN


def test_opens_on_p95_latency_exactly_when_the_nearest_rank_p95_crosses_the_limit() -> None:
    rng = np.random.default_rng(11)
    for _ in range(200):
        clock = FakeClock()
        b = breaker(clock, min_calls=20, max_error_rate=1.0, max_p95_latency_s=0.1)
        latencies = rng.choice([0.02, 0.05, 0.1, 0.15, 0.5], p=[0.5, 0.3, 0.1, 0.06, 0.04], size=80)
        expected_open_at = next(
            (
                n
                for n in range(20, 81)
                if np.percentile(latencies[:n], 95, method="inverted_cdf") > 0.1
            ),
            None,
        )
        opened_at = None
        for n, latency in enumerate(latencies, start=1):
            b.record(True, float(latency))
            if b.state is BreakerState.OPEN:
                opened_at = n
                break
        assert opened_at == expected_open_at, latencies.tolist()


def test_opens_on_mean_latency(clock: FakeClock) -> None:
    b = breaker(clock, max_mean_latency_s=0.2)
    record(b, ok=9, latency=0.1)
    record(b, ok=1, latency=1.1)  # mean 0.2: not above
    assert b.state is BreakerState.CLOSED
    record(b, ok=1, latency=0.31)
    assert b.state is BreakerState.OPEN
    assert "mean latency" in (b.snapshot().reason or "")


def test_half_opens_after_the_cool_down_and_lets_probe_calls_through(clock: FakeClock) -> None:
    b = opened(clock, probe_calls=2)
    clock.advance(29.999)
    assert b.state is BreakerState.OPEN and not b.allow()
    clock.advance(0.001)
    assert b.state is BreakerState.HALF_OPEN
    assert [b.allow() for _ in range(4)] == [True, True, False, False]


def test_closes_when_every_probe_succeeds_with_a_fresh_window(clock: FakeClock) -> None:
    b = opened(clock, probe_calls=2)
    clock.advance(30)
    assert b.allow() and b.allow()
    b.record(True, 0.01)
    assert b.state is BreakerState.HALF_OPEN
    b.record(True, 0.01)
    assert b.state is BreakerState.CLOSED
    record(b, failed=9)  # the failures that opened it are gone
    assert b.state is BreakerState.CLOSED
    assert b.snapshot().times_opened == 1


def test_reopens_on_a_failed_probe(clock: FakeClock) -> None:
    b = opened(clock)
    clock.advance(30)
    assert b.allow()
    b.record(False, 0.01)
    assert b.state is BreakerState.OPEN
    snap = b.snapshot()
    assert snap.times_opened == 2 and snap.retry_at == clock.now + 30
    assert "probe failed" in (snap.reason or "")
    clock.advance(30)
    assert b.allow()
    b.record(True, 0.01)
    assert b.state is BreakerState.CLOSED


def test_a_too_slow_probe_reopens(clock: FakeClock) -> None:
    b = opened(clock, max_p95_latency_s=0.5)
    clock.advance(30)
    assert b.allow()
    b.record(True, 0.6)
    assert b.state is BreakerState.OPEN


def test_a_probe_without_an_outcome_counts_as_failed(clock: FakeClock) -> None:
    b = opened(clock, probe_timeout_s=5.0)
    clock.advance(30)
    assert b.allow() and not b.allow()
    clock.advance(5.0)
    assert b.state is BreakerState.OPEN
    assert "no outcome" in (b.snapshot().reason or "")


def test_the_probe_timeout_runs_from_when_the_probe_was_let_through(clock: FakeClock) -> None:
    b = opened(clock, probe_timeout_s=5.0)
    clock.advance(30)
    assert b.state is BreakerState.HALF_OPEN  # observed long before the first request
    clock.advance(60)
    assert b.allow()
    clock.advance(4.9)
    b.record(True, 0.01)
    assert b.state is BreakerState.CLOSED


def test_outcomes_beyond_the_granted_probes_are_ignored(clock: FakeClock) -> None:
    b = opened(clock)
    clock.advance(30)
    b.record(False, 0.01)  # a call from before the circuit opened, not a probe
    assert b.state is BreakerState.HALF_OPEN


def run_threads(n: int, target: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.fixture
def fast_switching() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # make lost updates likely if anything were unlocked
    yield
    sys.setswitchinterval(old)


@pytest.mark.usefixtures("fast_switching")
def test_concurrent_records_lose_nothing() -> None:
    b = CircuitBreaker("v", BreakerSettings(max_error_rate=1.0, window_s=3600))
    per_thread = 5_000

    def work(i: int) -> None:
        rng = random.Random(i)
        for _ in range(per_thread):
            b.record(rng.random() < 0.3, 0.001)

    run_threads(8, work)
    draws = [random.Random(i) for i in range(8)]
    expected_errors = sum(r.random() >= 0.3 for r in draws for _ in range(per_thread))
    snap = b.snapshot()
    assert snap.calls == 8 * per_thread
    assert snap.errors == expected_errors
    assert b.state is BreakerState.CLOSED


@pytest.mark.usefixtures("fast_switching")
def test_concurrent_allow_grants_exactly_the_probe_calls(clock: FakeClock) -> None:
    b = opened(clock, probe_calls=3)
    clock.advance(30)
    granted = [0] * 8

    def work(i: int) -> None:
        granted[i] = sum(b.allow() for _ in range(2_000))

    run_threads(8, work)
    assert sum(granted) == 3
    assert b.snapshot().rejected == 8 * 2_000 - 3


def test_snapshot_reports_the_window(clock: FakeClock) -> None:
    b = breaker(clock, max_p95_latency_s=0.1)
    record(b, ok=3, latency=0.05)
    record(b, failed=1, latency=0.25)
    snap = b.snapshot()
    assert (snap.calls, snap.errors, snap.slow_calls) == (4, 1, 1)
    assert snap.error_rate == 0.25 and snap.mean_latency_s == pytest.approx(0.1)
    d = snap.to_dict()
    assert d["state"] == "closed" and d["retry_at"] is None and d["name"] == "churn/3"


@pytest.mark.parametrize(
    "bad",
    [
        {"window_s": 0},
        {"min_calls": 0},
        {"max_error_rate": 1.5},
        {"probe_calls": 0},
        {"max_p95_latency_s": 0},
        {"cool_down_s": -1},
    ],
)
def test_settings_out_of_range_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError, match=next(iter(bad))):
        BreakerSettings(**bad)  # type: ignore[arg-type]


def test_breakers_are_kept_per_version(clock: FakeClock) -> None:
    board = CircuitBreakers(BreakerSettings(min_calls=1), clock=clock)
    assert board.get("churn/3") is board.get("churn/3")
    board.get("churn/3").record(False, 0.1)
    assert board.get("churn/3").state is BreakerState.OPEN
    assert board.get("churn/4").state is BreakerState.CLOSED
    assert set(board.snapshots()) == {"churn/3", "churn/4"}
    board.discard("churn/3")
    assert board.get("churn/3").state is BreakerState.CLOSED
