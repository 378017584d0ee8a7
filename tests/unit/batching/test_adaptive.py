"""AdaptiveBatcher behaviour with toy predictors (echo, slow, failing)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from sibyl.batching import AdaptiveBatcher, Priority
from sibyl.errors import DeadlineExceededError, OverloadedError, PredictionError
from sibyl.settings import BatchSettings
from tests.toys import FAIL_MARKER, EchoPredictor, FailingPredictor, SlowPredictor


def run(fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(fn())


def rows(*values: float) -> np.ndarray[Any, Any]:
    return np.array([[v, 1.0] for v in values])


def test_concurrent_requests_share_model_calls_and_get_their_own_rows() -> None:
    model = SlowPredictor(0.02)

    async def go() -> list[Any]:
        b = AdaptiveBatcher(model, BatchSettings(max_batch_size=8))
        outs = await asyncio.gather(*(b.predict(rows(float(i))) for i in range(30)))
        await b.close()
        return outs

    outs = run(go)
    assert [float(o.predictions[0]) for o in outs] == [i + 1.0 for i in range(30)]
    assert max(model.batches) <= 8
    assert len(model.batches) < 30  # batched
    assert sum(model.batches) == 30


def test_model_runs_off_the_event_loop() -> None:
    model = EchoPredictor()

    async def go() -> None:
        b = AdaptiveBatcher(model, BatchSettings(), name="m")
        await b.predict(rows(1))
        await b.close()

    run(go)
    assert model.threads and threading.main_thread().name not in model.threads


def test_a_large_request_runs_alone_unsplit() -> None:
    model = SlowPredictor(0.01)

    async def go() -> None:
        b = AdaptiveBatcher(model, BatchSettings(max_batch_size=4, max_queue_rows=100))
        out = await b.predict(rows(*range(10)))
        assert len(out) == 10
        await b.close()

    run(go)
    assert model.batches == [10]


def test_high_priority_lane_is_served_first() -> None:
    model = SlowPredictor(0.05)
    order: list[str] = []

    async def go() -> None:
        b = AdaptiveBatcher(model, BatchSettings(max_batch_size=1))
        first = asyncio.create_task(b.predict(rows(0)))
        await asyncio.sleep(0.01)  # the model is now busy with `first`

        async def tagged(tag: str, p: Priority) -> None:
            await b.predict(rows(1), priority=p)
            order.append(tag)

        await asyncio.gather(tagged("low", Priority.LOW), tagged("normal", Priority.NORMAL),
                             tagged("high", Priority.HIGH), first)
        await b.close()

    run(go)
    assert order == ["high", "normal", "low"]


def test_full_queue_is_shed_with_retry_after() -> None:
    model = SlowPredictor(0.1)

    async def go() -> None:
        b = AdaptiveBatcher(model, BatchSettings(max_batch_size=1, max_queue_rows=3))
        busy = asyncio.create_task(b.predict(rows(0)))
        for _ in range(500):  # until the worker runs it (a busy machine may take a while)
            await asyncio.sleep(0.002)
            if b.queued_rows == 0:  # taken by the worker, now sleeping in the model
                break
        queued = [asyncio.create_task(b.predict(rows(i))) for i in range(3)]
        await asyncio.sleep(0)
        with pytest.raises(OverloadedError) as info:
            await b.predict(rows(9))
        assert info.value.retry_after >= 1
        await asyncio.gather(busy, *queued)
        await b.close()

    run(go)


def test_deadline_passing_in_queue_gives_504_without_running_the_model() -> None:
    model = SlowPredictor(0.1)

    async def go() -> None:
        b = AdaptiveBatcher(model, BatchSettings(max_batch_size=1))
        busy = asyncio.create_task(b.predict(rows(0)))
        await asyncio.sleep(0.01)
        with pytest.raises(DeadlineExceededError):
            await b.predict(rows(5), deadline=time.monotonic() + 0.02)
        await busy
        await b.close()

    run(go)
    assert model.batches == [1]  # the expired request never reached the model


def test_a_failing_request_fails_alone_within_a_batch() -> None:
    model = FailingPredictor()

    async def go() -> list[Any]:
        b = AdaptiveBatcher(model, BatchSettings(max_batch_size=16))
        outs = await asyncio.gather(*(b.predict(rows(FAIL_MARKER if i == 3 else i))
                                      for i in range(8)), return_exceptions=True)
        await b.close()
        return outs

    outs = run(go)
    assert isinstance(outs[3], PredictionError)
    assert all(not isinstance(o, Exception) for i, o in enumerate(outs) if i != 3)


def test_wrong_row_count_from_model_is_a_prediction_error() -> None:
    class Bad(EchoPredictor):
        def predict(self, batch: Any) -> Any:
            out = super().predict(batch)
            return out.slice(0, 0)

    async def go() -> None:
        b = AdaptiveBatcher(Bad(), BatchSettings())
        with pytest.raises(PredictionError, match="returned 0 rows"):
            await b.predict(rows(1))
        await b.close()

    run(go)


def test_max_wait_collects_a_batch_when_not_eager() -> None:
    model = EchoPredictor()

    async def go() -> None:
        b = AdaptiveBatcher(model, BatchSettings(max_batch_size=4, max_wait_ms=50, eager=False))
        first = asyncio.create_task(b.predict(rows(0)))
        await asyncio.sleep(0.005)  # well inside max_wait: the batch is still open
        await asyncio.gather(first, *(b.predict(rows(i)) for i in range(3)))
        await b.close()

    run(go)
    assert model.batches == [4]


def test_close_drains_then_refuses() -> None:
    model = SlowPredictor(0.05)

    async def go() -> None:
        b = AdaptiveBatcher(model, BatchSettings())
        pending = asyncio.create_task(b.predict(rows(1)))
        await asyncio.sleep(0.01)
        await b.close()
        assert pending.done() and len(pending.result()) == 1
        with pytest.raises(OverloadedError):
            await b.predict(rows(1))

    run(go)


@pytest.mark.parametrize(("value", "lane"), [(1, Priority.HIGH), (0, Priority.NORMAL),
                                             (2, Priority.NORMAL), (5, Priority.LOW),
                                             ("high", Priority.HIGH), ("3", Priority.LOW)])
def test_priority_parsing(value: object, lane: Priority) -> None:
    assert Priority.parse(value) is lane


@pytest.mark.parametrize("value", [-1, "urgent", 1.5, True, None])
def test_bad_priority_is_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="priority must be"):
        Priority.parse(value)


def test_expired_requests_free_their_queue_space_at_once() -> None:
    model = SlowPredictor(0.1)

    async def go() -> None:
        b = AdaptiveBatcher(model, BatchSettings(max_batch_size=1, max_queue_rows=2))
        busy = asyncio.create_task(b.predict(rows(0)))
        await asyncio.sleep(0.01)
        for _ in range(3):  # each times out while queued; none may leave a ghost behind
            with pytest.raises(DeadlineExceededError):
                await b.predict(rows(1), deadline=time.monotonic() + 0.01)
        assert b.queued_rows == 0
        await asyncio.gather(busy, b.predict(rows(2)), b.predict(rows(3)))
        await b.close()

    run(go)


def test_queue_is_bounded_in_time_by_the_measured_cost_per_row() -> None:
    model = SlowPredictor(0.05)  # 50 ms a call of one row: ≈ 50 ms a row

    async def go() -> None:
        b = AdaptiveBatcher(model, BatchSettings(max_batch_size=1, max_queue_rows=1000,
                                                 max_queue_delay_ms=120))
        await b.predict(rows(0))  # teaches the batcher the cost per row
        busy = asyncio.create_task(b.predict(rows(0)))
        await asyncio.sleep(0.01)
        queued = [asyncio.create_task(b.predict(rows(i))) for i in range(2)]  # ≈ 100 ms of work
        await asyncio.sleep(0)
        with pytest.raises(OverloadedError, match="ms of work"):
            await b.predict(rows(9))  # a third row would be ≈ 150 ms > 120 ms
        await asyncio.gather(busy, *queued)
        await b.close()

    run(go)
