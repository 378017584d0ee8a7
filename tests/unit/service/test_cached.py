"""CachedBatcher: the prediction cache in front of a real AdaptiveBatcher over toy predictors.

Every test counts what reaches the model (the toys record each batch they see), so "a hit never
reaches the batcher" and "only the missing rows are predicted" are measured, not assumed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sibyl.batching import AdaptiveBatcher
from sibyl.cache import KeyValueCache, MemoryStore, get_cache
from sibyl.errors import DeadlineExceededError, PredictionError
from sibyl.monitoring import Metrics
from sibyl.runtime.schema import ColumnSpec, InputSchema
from sibyl.runtime.types import Batch, Prediction, Predictor
from sibyl.service import ModelManager
from sibyl.service._cached import CachedBatcher, encode_rows
from sibyl.settings import BatchSettings, CachePolicySettings, Settings
from tests.toys import (
    FAIL_MARKER,
    ClassifierToy,
    EchoPredictor,
    FailingPredictor,
    SlowPredictor,
)
from tests.unit.service.conftest import SCHEMA, samples, toy

SEQ_SCHEMA = InputSchema([ColumnSpec("history", "seq"), ColumnSpec("query", "int")])


class Recording:
    """Wraps a toy predictor and records the rows of every batch it is given."""

    def __init__(self, inner: Predictor) -> None:
        self.inner = inner
        self.seen: list[Batch] = []

    def predict(self, batch: Batch) -> Prediction:
        self.seen.append(batch)
        return self.inner.predict(batch)

    @property
    def rows(self) -> int:
        return sum(len(b) for b in self.seen)


class NamedOutputs:
    """Two named outputs per row (a dict per row in ``predictions``), as a torch module gives."""

    def predict(self, batch: Batch) -> Prediction:
        x = np.asarray(batch, dtype=np.float64)
        outputs = {"p": x.sum(axis=1).astype(np.float32), "m": np.stack([x[:, 0], -x[:, 1]], 1)}
        rows = np.empty(len(x), dtype=object)
        for i in range(len(x)):
            rows[i] = {"p": outputs["p"][i], "m": outputs["m"][i]}
        return Prediction(rows, outputs=outputs)


class StringClasses(ClassifierToy):
    """A classifier with string classes (fixed-width ``<U`` labels, as scikit-learn gives)."""

    def predict(self, batch: Batch) -> Prediction:
        out = super().predict(batch)
        classes = np.array(["negative", "positive"])
        assert out.probabilities is not None
        return Prediction(classes[out.predictions], out.probabilities, tuple(classes.tolist()))


class Labels:
    """String labels in an object array (a pyfunc model): the pickled row format."""

    def predict(self, batch: Batch) -> Prediction:
        x = np.asarray(batch, dtype=np.float64)
        labels = np.array([f"sum={s:g}" for s in x.sum(axis=1)], dtype=object)
        return Prediction(labels)


class HistoryLength:
    """A sequence model: the length of each history plus the query."""

    def predict(self, batch: Batch) -> Prediction:
        assert isinstance(batch, pd.DataFrame)
        return Prediction(
            np.array(
                [len(h) + q for h, q in zip(batch["history"], batch["query"], strict=True)],
                dtype=np.int64,
            )
        )


def run(fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(fn())


def cached(
    predictor: Predictor,
    cache: KeyValueCache | None = None,
    *,
    version: str = "1",
    schema: InputSchema = SCHEMA,
) -> tuple[CachedBatcher, Recording, KeyValueCache]:
    """A CachedBatcher over a real batcher (call inside a running loop)."""
    rec = Recording(predictor)
    cache = cache or KeyValueCache(MemoryStore())
    batcher = AdaptiveBatcher(rec, BatchSettings())
    return CachedBatcher(batcher, cache, "m", version, schema), rec, cache


def assert_same(a: Prediction, b: Prediction) -> None:
    assert a.predictions.dtype == b.predictions.dtype
    if a.predictions.dtype == object:
        assert [repr(v) for v in a.predictions] == [repr(v) for v in b.predictions]
    else:
        np.testing.assert_array_equal(a.predictions, b.predictions)
    assert (a.probabilities is None) == (b.probabilities is None)
    if a.probabilities is not None and b.probabilities is not None:
        assert a.probabilities.dtype == b.probabilities.dtype
        np.testing.assert_array_equal(a.probabilities, b.probabilities)
    assert a.classes == b.classes
    assert (a.outputs is None) == (b.outputs is None)
    if a.outputs is not None and b.outputs is not None:
        assert list(a.outputs) == list(b.outputs)
        for k in a.outputs:
            assert a.outputs[k].dtype == b.outputs[k].dtype
            np.testing.assert_array_equal(a.outputs[k], b.outputs[k])


def test_a_request_whose_rows_are_all_cached_never_reaches_the_batcher() -> None:
    async def go() -> None:
        cb, rec, _ = cached(EchoPredictor())
        batch = np.array([[1.0, 2.0], [3.0, 4.0]])
        first = await cb.predict(batch)
        assert len(rec.seen) == 1
        for _ in range(3):
            again = await cb.predict(batch.copy())
            assert_same(first, again)
        assert len(rec.seen) == 1  # three requests, no model call
        await cb.close()

    run(go)


def test_partial_hits_predict_only_the_missing_rows_and_keep_the_order() -> None:
    async def go() -> None:
        cb, rec, _ = cached(EchoPredictor())
        await cb.predict(np.array([[1.0, 0.0], [2.0, 0.0]]))
        out = await cb.predict(
            np.array([[2.0, 0.0], [5.0, 0.0], [1.0, 0.0], [7.0, 0.0], [5.0, 0.0]])
        )
        np.testing.assert_array_equal(out.predictions, [2.0, 5.0, 1.0, 7.0, 5.0])
        np.testing.assert_array_equal(rec.seen[-1], [[5.0, 0.0], [7.0, 0.0]])  # missing, once
        assert rec.rows == 4
        await cb.close()

    run(go)


@pytest.mark.parametrize(
    "make", [ClassifierToy, StringClasses, NamedOutputs, Labels, EchoPredictor]
)
def test_every_output_layout_round_trips_through_the_cache(make: Callable[[], Predictor]) -> None:
    """Labels + probabilities + classes, named outputs (dict rows), object labels, values: an
    answer from the cache equals the model's, alone and mixed with fresh rows."""
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(12, 2))

    async def go() -> None:
        cb, rec, _ = cached(make())
        direct = make().predict(rows)
        await cb.predict(rows[:6])  # the first half is cached
        assert_same(await cb.predict(rows[:6]), direct.slice(0, 6))  # all hits
        mixed = await cb.predict(rows)  # 6 hits, 6 predicted
        assert_same(mixed, direct)
        assert rec.rows == 12
        await cb.close()

    run(go)


def test_identical_concurrent_requests_are_computed_once() -> None:
    async def go() -> None:
        cb, rec, cache = cached(SlowPredictor(0.05))
        batch = np.array([[1.0, 2.0], [3.0, 4.0]])
        outs = await asyncio.gather(*(cb.predict(batch.copy()) for _ in range(10)))
        assert len(rec.seen) == 1
        assert all(o.predictions.tolist() == [3.0, 7.0] for o in outs)
        assert cache.stats().counts["coalesced"] == 18  # 9 requests × 2 rows joined the first
        await cb.close()

    run(go)


def test_a_request_waiting_on_another_does_not_inherit_its_deadline() -> None:
    async def go() -> None:
        cb, rec, _ = cached(SlowPredictor(0.2))
        batch = np.array([[1.0, 2.0]])
        leader = asyncio.ensure_future(cb.predict(batch, deadline=time.monotonic() + 0.05))
        await asyncio.sleep(0.01)  # the leader is computing the row
        follower = asyncio.ensure_future(cb.predict(batch.copy()))
        with pytest.raises(DeadlineExceededError):
            await leader
        assert (await follower).predictions.tolist() == [3.0]
        assert len(rec.seen) == 2  # the follower predicted on its own
        await cb.close()

    run(go)


def test_a_model_error_reaches_every_request_waiting_on_it_and_is_not_cached() -> None:
    async def go() -> None:
        cb, rec, cache = cached(FailingPredictor())
        batch = np.array([[FAIL_MARKER, 1.0]])
        outs = await asyncio.gather(*(cb.predict(batch) for _ in range(3)), return_exceptions=True)
        assert all(isinstance(o, PredictionError) for o in outs), outs
        assert len(rec.seen) == 1 and cache.stats().counts["set"] == 0
        await cb.close()

    run(go)


def test_nan_rows_are_cached_and_distinct_from_other_rows() -> None:
    async def go() -> None:
        cb, rec, _ = cached(EchoPredictor())
        batch = np.array([[np.nan, 1.0], [0.0, 1.0], [np.nan, np.nan]])
        first = await cb.predict(batch)
        again = await cb.predict(np.array([[np.nan, 1.0], [np.nan, np.nan], [0.0, 1.0]]))
        assert len(rec.seen) == 1
        np.testing.assert_array_equal(again.predictions, first.predictions[[0, 2, 1]])
        assert again.predictions[2] == 1.0 and np.isnan(again.predictions[0])
        await cb.close()

    run(go)


def test_dataframe_batches_with_sequence_cells_are_cached_by_value() -> None:
    async def go() -> None:
        cb, rec, _ = cached(HistoryLength(), schema=SEQ_SCHEMA)
        frame = pd.DataFrame({"history": [[1, 2, 3], [4], [1, 2, 3]], "query": [10, 20, 10]})
        out = await cb.predict(frame)
        assert out.predictions.tolist() == [13, 21, 13]
        assert len(rec.seen[0]) == 2  # the duplicate row predicted once
        later = pd.DataFrame({"history": [[4], [9, 9]], "query": [20, 1]})
        assert (await cb.predict(later)).predictions.tolist() == [21, 3]
        assert rec.seen[-1]["history"].tolist() == [[9, 9]]
        await cb.close()

    run(go)


def test_a_new_version_never_gets_the_old_versions_answers() -> None:
    async def go() -> None:
        cache = KeyValueCache(MemoryStore())
        v1, rec1, _ = cached(EchoPredictor(), cache, version="1")
        v2, rec2, _ = cached(ClassifierToy(), cache, version="2")
        batch = np.array([[1.0, 2.0]])
        assert (await v1.predict(batch)).predictions.tolist() == [3.0]
        assert (await v2.predict(batch)).predictions.tolist() == [1]
        assert len(rec1.seen) == 1 and len(rec2.seen) == 1
        await v1.close()
        await v2.close()

    run(go)


def test_an_unreadable_entry_is_served_uncached_not_failed() -> None:
    async def go() -> None:
        cb, rec, cache = cached(EchoPredictor())
        batch = np.array([[1.0, 2.0]])
        await cb.predict(batch)
        key = next(iter(cache.store._data))  # type: ignore[attr-defined]
        cache.store.set_many([(key, b"\x07garbage")], 60)
        assert (await cb.predict(batch)).predictions.tolist() == [3.0]
        assert len(rec.seen) == 2
        await cb.close()

    run(go)


def test_encoded_numeric_rows_are_compact() -> None:
    pred = ClassifierToy().predict(np.zeros((4, 2)))
    encoded = encode_rows(pred)
    assert len(encoded) == 4 and all(v[0] == 1 for v in encoded)  # raw, not pickled
    assert len(encoded[0]) < 120


def _manager(**overrides: Any) -> tuple[ModelManager, Metrics]:
    metrics = Metrics()
    settings = Settings(cache_overrides={k: CachePolicySettings(**v) for k, v in overrides.items()})
    cache = get_cache("memory://", on_result=metrics.on_cache_result)
    return ModelManager(None, settings, metrics, cache), metrics  # type: ignore[arg-type]


def test_the_manager_wraps_cached_models_and_leaves_opted_out_ones_alone() -> None:
    async def go() -> None:
        manager, metrics = _manager(dice={"enabled": False}, fast={"ttl_s": 5})
        dice_model, fast_model = EchoPredictor(), EchoPredictor()
        dice = manager.add_loaded(toy("dice", "1", dice_model))
        fast = manager.add_loaded(toy("fast", "1", fast_model))
        assert isinstance(fast.batcher, CachedBatcher) and fast.batcher.policy is not None
        assert fast.batcher.policy.ttl_s == 5
        assert isinstance(dice.batcher, AdaptiveBatcher)
        batch = np.array([[1.0, 2.0]])
        for _ in range(3):
            await dice.batcher.predict(batch)
            await fast.batcher.predict(batch)
        assert len(dice_model.batches) == 3 and len(fast_model.batches) == 1
        hits = samples(metrics, "ml_cache_operations_total")
        assert hits[(("result", "hit"),)] == 2 and hits[(("result", "set"),)] == 1
        assert fast.describe()["batching"]["cache"] == {"enabled": True, "ttl_s": 5}
        await manager.pool.close_all()

    run(go)


def test_unloading_a_version_purges_its_rows_from_the_in_process_cache() -> None:
    async def go() -> None:
        manager, metrics = _manager()
        assert manager.cache is not None
        a = manager.add_loaded(toy("a", "1", EchoPredictor()))
        b = manager.add_loaded(toy("b", "1", EchoPredictor()))
        await a.batcher.predict(np.array([[1.0, 2.0], [2.0, 2.0]]))
        await b.batcher.predict(np.array([[1.0, 2.0]]))
        assert manager.cache.stats().entries == 3
        assert await manager.unload("a", "1")
        assert manager.cache.stats().entries == 1  # b's row stays
        assert samples(metrics, "ml_cache_operations_total")[(("result", "purge"),)] == 1
        await manager.pool.close_all()

    run(go)


def test_caching_off_builds_no_wrapper() -> None:
    async def go() -> None:
        settings = Settings()
        settings.cache.enabled = False
        manager = ModelManager(None, settings, Metrics(), KeyValueCache(MemoryStore()))  # type: ignore[arg-type]
        sv = manager.add_loaded(toy("m", "1", EchoPredictor()))
        assert isinstance(sv.batcher, AdaptiveBatcher)
        await manager.pool.close_all()

    run(go)
