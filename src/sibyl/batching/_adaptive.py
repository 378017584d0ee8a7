"""AdaptiveBatcher: many concurrent requests → few model calls, off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import structlog

from sibyl.batching._types import BatchObserver, Priority
from sibyl.errors import DeadlineExceededError, OverloadedError, PredictionError
from sibyl.runtime.schema import InputSchema
from sibyl.runtime.types import Batch, Prediction, Predictor
from sibyl.settings import BatchSettings

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class _Item:
    batch: Batch
    rows: int
    future: asyncio.Future[Prediction]
    deadline: float | None
    enqueued: float


@dataclass(slots=True)
class _Lane:
    items: deque[_Item] = field(default_factory=deque)
    rows: int = 0


class _NullObserver:
    def on_batch(self, rows: int, seconds: float, ok: bool) -> None:
        pass

    def on_queue(self, lane: Priority, rows: int) -> None:
        pass


def _limit_threads(threads: int) -> None:
    """Pin OpenMP/BLAS pools of the worker thread (OpenMP limits are per calling thread)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)


class AdaptiveBatcher:
    """Wraps a synchronous :class:`Predictor` and serves it to many concurrent tasks.

    * Rows of queued requests are joined into one model call of at most ``max_batch_size`` rows
      (a single request larger than that runs alone, unsplit).
    * ``eager`` (default): when the model is idle a batch leaves after one event-loop turn, so
      light load sees no added wait and batches grow by themselves while the model is busy.
      Otherwise a batch leaves when it is full or its oldest request has waited ``max_wait_ms``.
    * Three priority lanes; a batch is filled from HIGH, then NORMAL, then LOW.
    * Each lane holds at most ``max_queue_rows`` rows; beyond that :class:`OverloadedError`
      (429) with a ``retry_after`` estimated from the measured cost per row.
    * Requests whose deadline passes while queued are answered with ``DeadlineExceededError``
      without running the model.
    * The model runs in one dedicated worker thread (one call at a time, per the Predictor
      contract). When a batch raises, its requests are retried one by one so only the failing
      request gets ``PredictionError``.

    Must be created, used and closed on one running event loop.
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
        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix=f"sibyl-{name}",
            initializer=_limit_threads,
            initargs=(threads,),
        )
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy = False
        self._closed = False
        self._row_cost = 1e-4  # EWMA seconds per row, seeds Retry-After
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{name}")

    # -- public ---------------------------------------------------------------------------------
    async def predict(
        self, batch: Batch, *, priority: Priority = Priority.NORMAL, deadline: float | None = None
    ) -> Prediction:
        """Queue ``batch`` and wait for its rows' predictions (see the class contract)."""
        if self._closed:
            raise OverloadedError(f"model '{self.name}' is shutting down; retry", retry_after=1)
        loop = asyncio.get_running_loop()
        rows = InputSchema.n_rows(batch)
        lane = self._lanes[priority]
        if lane.rows and lane.rows + rows > self.settings.max_queue_rows:
            raise OverloadedError(
                f"model '{self.name}' queue is full ({lane.rows} rows waiting in the "
                f"{priority.name.lower()} lane); retry later or raise "
                "batching.max_queue_rows",
                retry_after=self._retry_after(),
            )
        item = _Item(batch, rows, loop.create_future(), deadline, loop.time())
        lane.items.append(item)
        lane.rows += rows
        self._observer.on_queue(priority, lane.rows)
        self._idle.clear()
        self._wakeup.set()
        if deadline is None:
            return await item.future
        try:
            return await asyncio.wait_for(item.future, max(deadline - loop.time(), 0.0))
        except TimeoutError:
            self._forget(priority, item)
            raise DeadlineExceededError(
                f"model '{self.name}' did not answer before the request's deadline"
            ) from None
        except asyncio.CancelledError:  # the caller went away: free its queue space
            self._forget(priority, item)
            raise

    def _forget(self, priority: Priority, item: _Item) -> None:
        """Drop a request that no longer waits, so its rows stop counting against the queue."""
        lane = self._lanes[priority]
        try:
            lane.items.remove(item)
        except ValueError:
            return  # already taken by the worker
        lane.rows -= item.rows
        self._observer.on_queue(priority, lane.rows)

    @property
    def queued_rows(self) -> int:
        """Rows waiting in all lanes."""
        return sum(lane.rows for lane in self._lanes.values())

    async def drain(self) -> None:
        """Wait until nothing is queued or running."""
        await self._idle.wait()

    async def close(self) -> None:
        """Drain, then stop the worker thread; later calls to ``predict`` get 429."""
        self._closed = True
        await self.drain()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._executor.shutdown(wait=False)

    # -- the loop -------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            if not self.queued_rows:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._gather()
            items = self._take()
            if items:
                await self._dispatch(items)

    async def _gather(self) -> None:
        """Let the batch fill: one loop turn when eager, else until full or max_wait."""
        await asyncio.sleep(0)
        if self.settings.eager:
            return
        loop = asyncio.get_running_loop()
        limit = self.settings.max_batch_size
        while self.queued_rows < limit:
            oldest = min(
                (ln.items[0].enqueued for ln in self._lanes.values() if ln.items), default=None
            )
            if oldest is None:
                return
            remaining = oldest + self.settings.max_wait_ms / 1000 - loop.time()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Item]:
        now = asyncio.get_running_loop().time()
        taken: list[_Item] = []
        rows = 0
        for priority, lane in self._lanes.items():
            while lane.items:
                item = lane.items[0]
                if taken and rows + item.rows > self.settings.max_batch_size:
                    break
                lane.items.popleft()
                lane.rows -= item.rows
                if item.future.done():
                    continue
                if item.deadline is not None and item.deadline <= now:
                    item.future.set_exception(
                        DeadlineExceededError(
                            f"model '{self.name}': the request's deadline passed while queued"
                        )
                    )
                    continue
                taken.append(item)
                rows += item.rows
            self._observer.on_queue(priority, lane.rows)
            if rows >= self.settings.max_batch_size:
                break
        return taken

    async def _dispatch(self, items: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        rows = sum(i.rows for i in items)
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self._call, items)
        except BaseException as exc:  # the executor itself failed: fail this batch only
            results = [PredictionError(f"model '{self.name}' failed: {exc}")] * len(items)
        seconds = time.perf_counter() - started
        ok = not any(isinstance(r, BaseException) for r in results)
        self._row_cost = 0.8 * self._row_cost + 0.2 * (seconds / max(rows, 1))
        self._observer.on_batch(rows, seconds, ok)
        for item, result in zip(items, results, strict=True):
            if item.future.done():
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    # -- worker thread --------------------------------------------------------------------------
    def _call(self, items: list[_Item]) -> list[Prediction | BaseException]:
        if len(items) == 1:
            return [self._predict_one(items[0])]
        try:
            out = self._checked(InputSchema.concat([i.batch for i in items]))
        except Exception:
            return [self._predict_one(i) for i in items]  # isolate the failing request(s)
        results: list[Prediction | BaseException] = []
        start = 0
        for item in items:
            results.append(out.slice(start, start + item.rows))
            start += item.rows
        return results

    def _predict_one(self, item: _Item) -> Prediction | BaseException:
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

    def _retry_after(self) -> float:
        return float(max(1, math.ceil(self.queued_rows * self._row_cost)))

    def debug_state(self) -> dict[str, Any]:
        """Queue lengths and cost estimate (for ``/v1/models/{name}``)."""
        return {
            "queued_rows": {p.name.lower(): ln.rows for p, ln in self._lanes.items()},
            "seconds_per_row": self._row_cost,
            "max_batch_size": self.settings.max_batch_size,
            "max_wait_ms": self.settings.max_wait_ms,
            "eager": self.settings.eager,
            "max_queue_rows": self.settings.max_queue_rows,
        }
