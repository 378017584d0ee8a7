"""AdaptiveBatcher: many concurrent requests → few model calls, in a worker thread."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import structlog

from sibyl.batching._types import BatchObserver, Priority
from sibyl.errors import DeadlineExceededError, OverloadedError, PredictionError
from sibyl.runtime.schema import InputSchema
from sibyl.runtime.types import Batch, Prediction, Predictor
from sibyl.settings import BatchSettings

log = structlog.get_logger(__name__)
_Result = Prediction | BaseException


@dataclass(slots=True, eq=False)
class _Item:
    batch: Batch
    rows: int
    lane: Priority
    future: asyncio.Future[Prediction]
    deadline: float | None
    enqueued: float
    abandoned: bool = False
    """Set on the loop when the caller stopped waiting; the worker skips it."""
    timer: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class _Lane:
    items: deque[_Item] = field(default_factory=deque)
    rows: int = 0


class _NullObserver:
    def on_batch(self, rows: int, seconds: float, ok: bool) -> None:
        pass

    def on_queue(self, lane: Priority, rows: int) -> None:
        pass


class AdaptiveBatcher:
    """Wraps a synchronous :class:`Predictor` and serves it to many concurrent tasks.

    * One dedicated worker thread pulls batches from three priority lanes (HIGH, then NORMAL,
      then LOW) and calls the model: inference never runs on the event loop. A busy worker takes
      the next batch as soon as the last call returns, so under load batches grow by themselves
      and each batch costs one thread hand-off, not one per request.
    * A batch holds at most ``max_batch_size`` rows (a single larger request runs alone,
      unsplit). ``eager`` (default): an idle worker starts on whatever is queued when it wakes;
      otherwise it waits until the batch is full or its oldest request has waited
      ``max_wait_ms``.
    * Each lane holds at most ``max_queue_rows`` rows and at most ``max_queue_delay_ms`` of
      estimated work (rows times the measured cost per row); beyond that :class:`OverloadedError`
      (429) with a ``retry_after`` estimated from the same cost.
    * A request whose deadline (``time.monotonic()`` seconds, the loop's clock) passes while
      queued gets ``DeadlineExceededError`` without running the model; one whose caller gives up
      frees its queue space at once.
    * When a batch raises, its requests are retried one by one so only the failing request gets
      ``PredictionError``.

    ``predict``/``drain``/``close`` must be called on the event loop the batcher was made on.
    """

    def __init__(
        self,
        predictor: Predictor,
        settings: BatchSettings,
        *,
        name: str = "model",
        threads: int = 1,
        observer: BatchObserver | None = None,
    ) -> None:
        self.predictor = predictor
        self.settings = settings
        self.name = name
        self._observer: BatchObserver = observer or _NullObserver()
        self._lanes = {p: _Lane() for p in Priority}
        self._cond = threading.Condition(threading.Lock())
        self._worker_idle = True  # guarded by _cond
        self._closed = False
        self._pending = 0  # loop side: requests queued or running
        self._drained = asyncio.Event()
        self._drained.set()
        self._row_cost = 1e-4  # EWMA seconds per row (a seed until the first batch is measured)
        self._measured = False
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._work, args=(threads,), name=f"sibyl-{name}", daemon=True
        )
        self._thread.start()

    # -- loop side -------------------------------------------------------------------------------
    async def predict(
        self, batch: Batch, *, priority: Priority = Priority.NORMAL, deadline: float | None = None
    ) -> Prediction:
        """Queue ``batch`` and wait for its rows' predictions (see the class contract)."""
        if self._closed:
            raise OverloadedError(f"model '{self.name}' is shutting down; retry", retry_after=1)
        rows = InputSchema.n_rows(batch)
        item = _Item(batch, rows, priority, self._loop.create_future(), deadline, time.monotonic())
        with self._cond:
            lane = self._lanes[priority]
            if lane.rows and self._full(lane.rows + rows):
                raise OverloadedError(
                    f"model '{self.name}' queue is full ({lane.rows} rows waiting in the "
                    f"{priority.name.lower()} lane, ≈ {lane.rows * self._row_cost * 1e3:.0f} ms "
                    "of work); retry later or raise batching.max_queue_rows / "
                    "max_queue_delay_ms",
                    retry_after=self._retry_after(),
                )
            lane.items.append(item)
            lane.rows += rows
            depth = lane.rows
            if self._worker_idle:
                self._worker_idle = False  # one wake-up is enough until it sleeps again
                self._cond.notify()
        self._pending += 1
        self._drained.clear()
        if depth == rows:  # the lane was empty: report it; the worker reports the rest per batch
            self._observer.on_queue(priority, depth)
        if deadline is not None:  # a timer is much cheaper than asyncio.wait_for per request
            loop = self._loop
            item.timer = loop.call_at(loop.time() + deadline - time.monotonic(), self._expire, item)
        try:
            return await item.future
        except asyncio.CancelledError:  # the caller went away: free its queue space
            self._abandon(item)
            raise

    def _expire(self, item: _Item) -> None:
        """The deadline passed before an answer: 504 now, whatever the worker is doing."""
        if item.future.done():
            return
        self._abandon(item)
        item.future.set_exception(
            DeadlineExceededError(
                f"model '{self.name}' did not answer before the request's deadline"
            )
        )

    @property
    def queued_rows(self) -> int:
        """Rows waiting in all lanes."""
        with self._cond:
            return sum(lane.rows for lane in self._lanes.values())

    async def drain(self) -> None:
        """Wait until nothing is queued or running."""
        await self._drained.wait()

    async def close(self) -> None:
        """Drain, then stop the worker thread; later calls to ``predict`` get 429."""
        self._closed = True
        await self.drain()
        with self._cond:
            self._cond.notify()
        await asyncio.to_thread(self._thread.join, 5.0)

    def _abandon(self, item: _Item) -> None:
        item.abandoned = True
        if item.timer is not None:
            item.timer.cancel()
        with self._cond:
            lane = self._lanes[item.lane]
            try:
                lane.items.remove(item)
            except ValueError:
                return  # already taken by the worker; _deliver accounts for it
            lane.rows -= item.rows
            depth = lane.rows
        self._done(1)
        self._observer.on_queue(item.lane, depth)

    def _deliver(self, items: list[_Item], results: list[_Result], seconds: float) -> None:
        """Runs on the loop: hand each request its rows (one callback per batch)."""
        rows = sum(i.rows for i in items)
        ok = not any(isinstance(r, BaseException) for r in results)
        self._observer.on_batch(rows, seconds, ok)
        for item, result in zip(items, results, strict=True):
            if item.abandoned or item.future.done():
                continue  # timed out while running: its caller already has a 504
            if item.timer is not None:
                item.timer.cancel()
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)
        self._done(len(items))  # every item the worker took is accounted for here, once

    def _done(self, n: int) -> None:
        self._pending -= n
        if self._pending <= 0:
            self._pending = 0
            self._drained.set()

    def _full(self, rows: int) -> bool:
        """Whether a lane holding ``rows`` would be over its row or time bound."""
        s = self.settings
        return rows > s.max_queue_rows or rows * self._row_cost * 1e3 > s.max_queue_delay_ms

    def _retry_after(self) -> float:
        queued = sum(lane.rows for lane in self._lanes.values())
        return float(max(1, math.ceil(queued * self._row_cost)))

    # -- worker thread -------------------------------------------------------------------------
    def _work(self, threads: int) -> None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)  # OpenMP limits are per calling thread
        while True:
            items, expired = self._next_batch()
            if items is None:
                return
            if expired:
                self._post(expired, [self._expired_error()] * len(expired), 0.0)
            if items:
                started = time.perf_counter()
                results = self._call(items)
                seconds = time.perf_counter() - started
                rows = sum(i.rows for i in items)
                cost = seconds / max(rows, 1)
                self._row_cost = 0.8 * self._row_cost + 0.2 * cost if self._measured else cost
                self._measured = True
                self._post(items, results, seconds)

    def _post(self, items: list[_Item], results: list[_Result], seconds: float) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._deliver, items, results, seconds)

    def _next_batch(self) -> tuple[list[_Item] | None, list[_Item]]:
        """Block until there is work; ``(None, [])`` when closed and empty."""
        with self._cond:
            while not any(lane.items for lane in self._lanes.values()):
                if self._closed:
                    return None, []
                self._worker_idle = True
                self._cond.wait()
            self._worker_idle = False
            if not self.settings.eager:
                self._wait_for_fill()
            taken, expired = self._take()
            depths = [(p, lane.rows) for p, lane in self._lanes.items()]
        for priority, depth in depths:
            self._observer.on_queue(priority, depth)
        return taken, expired

    def _wait_for_fill(self) -> None:
        limit = self.settings.max_batch_size
        while sum(lane.rows for lane in self._lanes.values()) < limit:
            oldest = min(ln.items[0].enqueued for ln in self._lanes.values() if ln.items)
            remaining = oldest + self.settings.max_wait_ms / 1000 - time.monotonic()
            if remaining <= 0:
                return
            self._worker_idle = True  # let new arrivals wake us early
            self._cond.wait(remaining)
            self._worker_idle = False

    def _take(self) -> tuple[list[_Item], list[_Item]]:
        now = time.monotonic()
        taken: list[_Item] = []
        expired: list[_Item] = []
        rows = 0
        for lane in self._lanes.values():
            while lane.items:
                item = lane.items[0]
                if taken and rows + item.rows > self.settings.max_batch_size:
                    break
                lane.items.popleft()
                lane.rows -= item.rows
                if item.abandoned:
                    continue
                if item.deadline is not None and item.deadline <= now:
                    expired.append(item)
                    continue
                taken.append(item)
                rows += item.rows
            if rows >= self.settings.max_batch_size:
                break
        return taken, expired

    def _expired_error(self) -> DeadlineExceededError:
        return DeadlineExceededError(
            f"model '{self.name}': the request's deadline passed while queued"
        )

    def _call(self, items: list[_Item]) -> list[_Result]:
        if len(items) == 1:
            return [self._predict_one(items[0])]
        try:
            out = self._checked(InputSchema.concat([i.batch for i in items]))
        except Exception:
            return [self._predict_one(i) for i in items]  # isolate the failing request(s)
        results: list[_Result] = []
        start = 0
        for item in items:
            results.append(out.slice(start, start + item.rows))
            start += item.rows
        return results

    def _predict_one(self, item: _Item) -> _Result:
        try:
            return self._checked(item.batch)
        except Exception as exc:
            log.warning("predict_failed", model=self.name, error=repr(exc))
            return PredictionError(f"model '{self.name}' raised while predicting: {exc!r}")

    def _checked(self, batch: Batch) -> Prediction:
        out = self.predictor.predict(batch)
        expected = InputSchema.n_rows(batch)
        if len(out) != expected:
            raise ValueError(f"returned {len(out)} rows for {expected} input rows")
        return out

    def debug_state(self) -> dict[str, Any]:
        """Queue lengths and cost estimate (for ``/v1/models/{name}``)."""
        with self._cond:
            queued = {p.name.lower(): ln.rows for p, ln in self._lanes.items()}
        return {
            "queued_rows": queued,
            "seconds_per_row": self._row_cost,
            "max_batch_size": self.settings.max_batch_size,
            "max_wait_ms": self.settings.max_wait_ms,
            "eager": self.settings.eager,
            "max_queue_rows": self.settings.max_queue_rows,
            "max_queue_delay_ms": self.settings.max_queue_delay_ms,
        }
