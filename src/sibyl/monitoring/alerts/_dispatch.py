"""Delivery of notifications to channels: asynchronous, bounded, retried, counted.

:meth:`Dispatcher.submit` only enqueues (it never waits), so evaluation is never held up by a
slow or dead receiver. Each channel has its own bounded queue and worker task — one channel's
outage does not delay the others — and its own order of delivery. An attempt is bounded by
``timeout_s``; failed attempts are retried ``attempts - 1`` times with exponential back-off
(``backoff_s``, doubling, at most ``backoff_max_s``) unless the error says retrying cannot help.
Every outcome goes to the ``on_delivery(channel, outcome)`` hook (bind it to a Prometheus
counter) and to :meth:`Dispatcher.counts`; failures are logged.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import structlog

from sibyl.errors import InvalidInputError
from sibyl.monitoring.alerts._channels import Channel
from sibyl.monitoring.alerts._grouping import Notification

log = structlog.get_logger("sibyl.alerts")


class DeliveryOutcome(StrEnum):
    """What happened to one notification on one channel (``retried``: per failed attempt)."""

    SENT = "sent"
    RETRIED = "retried"
    """An attempt failed; another one follows after the back-off."""
    FAILED = "failed"
    """Every attempt failed (or the error was not retryable): the notification is lost."""
    DROPPED = "dropped"
    """Not attempted: the channel's queue was full, or the dispatcher was closing."""


DeliveryHook = Callable[[str, DeliveryOutcome], None]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Timeouts, retries and queue bound of every channel."""

    timeout_s: float = 10.0
    attempts: int = 4
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    queue_size: int = 256

    def __post_init__(self) -> None:
        checks = {"timeout_s": self.timeout_s > 0, "attempts": self.attempts >= 1,
                  "backoff_s": self.backoff_s >= 0, "backoff_max_s": self.backoff_max_s >= 0,
                  "queue_size": self.queue_size >= 1}  # fmt: skip
        for name, ok in checks.items():
            if not ok:
                raise InvalidInputError(f"Alert delivery '{name}' is out of range", field=name)

    def delay(self, failed_attempts: int) -> float:
        """Back-off after ``failed_attempts`` (1, 2, …) failed attempts."""
        return float(min(self.backoff_max_s, self.backoff_s * 2.0 ** (failed_attempts - 1)))


class Dispatcher:
    """Delivers notifications to ``channels``; call :meth:`submit` on the event loop.

    ``sleep`` is the back-off wait (tests pass a faster one). Start with :meth:`start` (or the
    first :meth:`submit`), finish with :meth:`close`.
    """

    def __init__(
        self,
        channels: Sequence[Channel],
        policy: RetryPolicy | None = None,
        *,
        on_delivery: DeliveryHook | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        names = [c.name for c in channels]
        if len(set(names)) != len(names):
            raise InvalidInputError(f"Alert channel names must be unique, got {names}",
                                    field="channels")  # fmt: skip
        self.channels = list(channels)
        self.policy = policy or RetryPolicy()
        self._hook = on_delivery
        self._sleep = sleep
        self._queues: dict[str, asyncio.Queue[Notification]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._counts: Counter[tuple[str, DeliveryOutcome]] = Counter()
        self._closing = False

    async def start(self) -> None:
        """Start one worker task per channel (idempotent)."""
        self._ensure_started()

    def _ensure_started(self) -> None:
        if self._workers or self._closing:
            return
        for channel in self.channels:
            queue: asyncio.Queue[Notification] = asyncio.Queue(self.policy.queue_size)
            self._queues[channel.name] = queue
            task = asyncio.create_task(self._work(channel, queue), name=f"alerts-{channel.name}")
            self._workers.append(task)

    def submit(self, notifications: Iterable[Notification]) -> None:
        """Queue each notification for every channel; never waits."""
        self._ensure_started()
        for notification in notifications:
            for channel in self.channels:
                queue = self._queues.get(channel.name)
                if queue is None or self._closing:
                    self._count(channel.name, DeliveryOutcome.DROPPED)
                    continue
                try:
                    queue.put_nowait(notification)
                except asyncio.QueueFull:
                    self._count(channel.name, DeliveryOutcome.DROPPED)
                    log.warning("alert_notification_dropped", channel=channel.name,
                                group_key=notification.group_key, reason="queue full")  # fmt: skip

    async def drain(self) -> None:
        """Wait until every queued notification was delivered or given up."""
        await asyncio.gather(*(queue.join() for queue in self._queues.values()))

    async def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued for at most ``timeout_s``, then stop and close channels."""
        self._closing = True
        try:
            await asyncio.wait_for(self.drain(), timeout_s)
        except TimeoutError:
            log.warning("alert_notifications_abandoned",
                        queued={n: q.qsize() for n, q in self._queues.items()})  # fmt: skip
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()
        for channel in self.channels:
            await channel.aclose()

    def counts(self) -> dict[tuple[str, DeliveryOutcome], int]:
        """Outcomes so far per (channel, outcome)."""
        return dict(self._counts)

    async def _work(self, channel: Channel, queue: asyncio.Queue[Notification]) -> None:
        while True:
            notification = await queue.get()
            try:
                await self._deliver(channel, notification)
            finally:
                queue.task_done()

    async def _deliver(self, channel: Channel, notification: Notification) -> None:
        policy = self.policy
        for attempt in range(1, policy.attempts + 1):
            try:
                await asyncio.wait_for(channel.send(notification), policy.timeout_s)
            except Exception as error:  # any failure of one attempt; CancelledError passes
                retry = getattr(error, "retryable", True) and attempt < policy.attempts
                if not retry:
                    self._failed(channel, notification, attempt, error)
                    return
                self._count(channel.name, DeliveryOutcome.RETRIED)
                await self._sleep(policy.delay(attempt))
            else:
                self._count(channel.name, DeliveryOutcome.SENT)
                return

    def _failed(
        self, channel: Channel, notification: Notification, attempts: int, error: Exception
    ) -> None:
        self._count(channel.name, DeliveryOutcome.FAILED)
        log.warning("alert_delivery_failed", channel=channel.name, attempts=attempts,
                    group_key=notification.group_key, error=str(error) or repr(error))  # fmt: skip

    def _count(self, channel: str, outcome: DeliveryOutcome) -> None:
        self._counts[(channel, outcome)] += 1
        if self._hook is not None:
            try:
                self._hook(channel, outcome)
            except Exception:
                log.exception("alert_delivery_hook_failed", channel=channel, outcome=outcome)
