"""The dispatcher with in-process channels (real objects that fail on purpose): retries with
back-off, timeouts, non-retryable errors, bounded queues, counts and the hook."""

from __future__ import annotations

import asyncio

import pytest
import structlog
import structlog.testing

from sibyl.errors import InvalidInputError
from sibyl.monitoring.alerts import (
    DeliveryError,
    DeliveryOutcome,
    Dispatcher,
    LogChannel,
    Notification,
    RetryPolicy,
)
from tests.unit.monitoring.alerts.support import Feed, at, engine, rule

SENT, RETRIED, FAILED, DROPPED = (DeliveryOutcome.SENT, DeliveryOutcome.RETRIED,
                                  DeliveryOutcome.FAILED, DeliveryOutcome.DROPPED)  # fmt: skip
FAST = RetryPolicy(timeout_s=1.0, attempts=3, backoff_s=0.001, backoff_max_s=0.004)


def notification() -> Notification:
    feed = Feed()
    feed.set("latency", 150)
    [note] = engine(feed, rule()).evaluate_once(at(0))
    return note


class Flaky:
    """Fails the first ``failures`` attempts (with ``error``), then succeeds."""

    def __init__(self, name: str, failures: int = 0, error: Exception | None = None,
                 delay_s: float = 0.0) -> None:
        self.name, self.failures, self.delay_s = name, failures, delay_s
        self.error = error or DeliveryError("receiver down")
        self.attempts = 0
        self.received: list[Notification] = []
        self.closed = False

    async def send(self, n: Notification) -> None:
        self.attempts += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.attempts <= self.failures:
            raise self.error
        self.received.append(n)

    async def aclose(self) -> None:
        self.closed = True


def deliver(channels: list[Flaky], policy: RetryPolicy = FAST, count: int = 1
            ) -> tuple[Dispatcher, list[tuple[str, DeliveryOutcome]], list[float]]:
    hooked: list[tuple[str, DeliveryOutcome]] = []
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def main() -> Dispatcher:
        d = Dispatcher(channels, policy, on_delivery=lambda c, o: hooked.append((c, o)),
                       sleep=sleep)
        await d.start()
        d.submit([notification()] * count)
        await d.drain()
        await d.close()
        return d

    return asyncio.run(main()), hooked, waits


def test_a_failing_attempt_is_retried_with_exponential_backoff() -> None:
    ok, flaky = Flaky("ok"), Flaky("flaky", failures=2)
    d, hooked, waits = deliver([ok, flaky])
    assert d.counts() == {("ok", SENT): 1, ("flaky", RETRIED): 2, ("flaky", SENT): 1}
    assert hooked.count(("flaky", RETRIED)) == 2 and ("flaky", SENT) in hooked
    assert waits == [0.001, 0.002]
    assert len(flaky.received) == 1 and ok.closed and flaky.closed


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(attempts=5, backoff_s=1.0, backoff_max_s=3.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 3.0, 3.0]


def test_giving_up_after_the_last_attempt_counts_a_failure() -> None:
    dead = Flaky("dead", failures=99)
    d, _, waits = deliver([dead])
    assert d.counts() == {("dead", RETRIED): 2, ("dead", FAILED): 1}
    assert dead.attempts == 3 and len(waits) == 2


def test_errors_that_retrying_cannot_fix_fail_at_once() -> None:
    refused = Flaky("refused", failures=99, error=DeliveryError("401", retryable=False))
    d, _, _ = deliver([refused])
    assert d.counts() == {("refused", FAILED): 1} and refused.attempts == 1


def test_any_exception_is_a_failed_attempt() -> None:
    d, _, _ = deliver([Flaky("buggy", failures=1, error=KeyError("oops"))])
    assert d.counts() == {("buggy", RETRIED): 1, ("buggy", SENT): 1}


def test_an_attempt_longer_than_the_timeout_is_cut_and_retried() -> None:
    slow = Flaky("slow", delay_s=5.0)
    policy = RetryPolicy(timeout_s=0.05, attempts=2, backoff_s=0.0)
    d, _, _ = deliver([slow], policy)
    assert d.counts() == {("slow", RETRIED): 1, ("slow", FAILED): 1}


def test_a_full_queue_drops_and_counts_without_waiting() -> None:
    async def main() -> Dispatcher:
        stuck = Flaky("stuck", delay_s=10.0)
        d = Dispatcher([stuck], RetryPolicy(queue_size=2, timeout_s=30.0))
        await d.start()
        d.submit([notification()] * 5)  # returns at once
        await asyncio.sleep(0)  # the worker takes the first one
        d.submit([notification()] * 2)
        await d.close(timeout_s=0.05)
        return d

    d = asyncio.run(main())
    assert d.counts()[("stuck", DROPPED)] >= 3


def test_submitting_after_close_drops() -> None:
    async def main() -> Dispatcher:
        d = Dispatcher([Flaky("c")], FAST)
        await d.start()
        await d.close()
        d.submit([notification()])
        return d

    assert asyncio.run(main()).counts() == {("c", DROPPED): 1}


def test_a_failing_hook_does_not_stop_delivery() -> None:
    def hook(channel: str, outcome: DeliveryOutcome) -> None:
        raise RuntimeError("prometheus exploded")

    async def main() -> Flaky:
        channel = Flaky("c")
        d = Dispatcher([channel], FAST, on_delivery=hook)
        d.submit([notification()])  # starts the workers itself
        await d.drain()
        await d.close()
        return channel

    assert len(asyncio.run(main()).received) == 1


def test_channel_names_must_be_unique() -> None:
    with pytest.raises(InvalidInputError, match="unique"):
        Dispatcher([LogChannel(), LogChannel()])


def test_bad_policies_are_refused() -> None:
    with pytest.raises(InvalidInputError) as info:
        RetryPolicy(attempts=0)
    assert info.value.field == "attempts"


def test_the_log_channel_logs_every_notification() -> None:
    config = structlog.get_config()  # another test may have configured a level above warning
    structlog.reset_defaults()
    try:
        with structlog.testing.capture_logs() as logs:
            asyncio.run(LogChannel().send(notification()))
    finally:
        structlog.configure(**config)
    [event] = [e for e in logs if e["event"] == "alert_notification"]
    assert event["log_level"] == "warning" and event["title"].startswith("[FIRING:1]")
    assert event["alerts"][0]["rule"] == "churn:latency"
