"""A failing store never reaches the caller: reads miss, writes and purges do nothing, the failure
is counted, and an unreachable store is left alone during its back-off."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from sibyl.cache import CachePolicy, KeyValueCache, MemoryStore, make_keys
from sibyl.errors import BackendUnavailableError
from tests.contract.cache_support import CountingStore, Events, ManualClock

KEYS = make_keys("m", "1", [[1, 2], [3, 4]], ("a", "b"))


class BrokenStore:
    """Answers every call with ``error`` (``BackendUnavailableError`` or a plain one)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        raise self.error

    def set_many(self, items: Sequence[tuple[str, bytes]], ttl_s: float) -> None:
        raise self.error

    def delete_prefix(self, prefix: str) -> int:
        raise self.error


def _cache(store: object, clock: ManualClock) -> tuple[KeyValueCache, Events]:
    events = Events()
    cache = KeyValueCache(
        store,
        clock=clock,
        backoff_s=1.0,
        max_backoff_s=2.0,  # type: ignore[arg-type]
        on_result=events.record,
    )
    return cache, events


def test_a_store_error_is_a_miss_and_a_no_op_counted_as_error() -> None:
    store = CountingStore(BrokenStore(RuntimeError("WRONGTYPE")))
    cache, events = _cache(store, ManualClock())
    assert cache.get_many(KEYS) == [None, None]
    cache.set_many([(KEYS[0], b"v")])
    assert cache.purge("m") == 0
    assert events == [("error", 2), ("error", 1), ("purge", 1), ("error", 1)]
    assert cache.get_many(KEYS) == [None, None]  # an answering store is not backed off
    assert store.total == 4 and cache.stats().available


def test_an_unreachable_store_is_skipped_until_its_back_off_ends() -> None:
    clock = ManualClock()
    store = CountingStore(BrokenStore(BackendUnavailableError("refused")))
    cache, events = _cache(store, clock)
    for _ in range(100):
        assert cache.get_many(KEYS) == [None, None]
        cache.set_many([(KEYS[0], b"v")])
    assert store.total == 1
    assert events.count(("unavailable", 2)) == 100 and events.count(("unavailable", 1)) == 100
    assert not cache.stats().available
    clock.advance(1.0)
    cache.get_many(KEYS)
    assert store.total == 2  # one probe


def test_get_or_compute_serves_computed_values_when_the_store_fails() -> None:
    for error in (RuntimeError("boom"), BackendUnavailableError("down")):
        cache, _ = _cache(BrokenStore(error), ManualClock())

        async def compute(missing: list[str]) -> list[bytes]:
            return [k.encode() for k in missing]

        assert asyncio.run(cache.get_or_compute(KEYS, compute)) == [k.encode() for k in KEYS]


def test_a_broken_metrics_hook_does_not_break_the_cache() -> None:
    def hook(result: str, n: int) -> None:
        raise ValueError("hook")

    cache = KeyValueCache(MemoryStore(), on_result=hook)
    cache.set_many([(KEYS[0], b"v")])
    assert cache.get_many(KEYS) == [b"v", None]


def test_caller_mistakes_raise() -> None:
    cache = KeyValueCache(MemoryStore())
    with pytest.raises(TypeError, match="bytes, got str"):
        cache.set_many([(KEYS[0], "text")])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="ttl_s must be"):
        cache.set_many([(KEYS[0], b"v")], ttl_s=0)
    with pytest.raises(ValueError, match="ttl_s must be"):
        CachePolicy(ttl_s=-1)

    async def short(missing: list[str]) -> list[bytes]:
        return [b"only one"]

    with pytest.raises(ValueError, match="returned 1 values for 2 keys"):
        asyncio.run(cache.get_or_compute(KEYS, short))
    with pytest.raises(ValueError, match="returned 1 values for 2 keys"):
        asyncio.run(cache.get_or_compute(KEYS, short, policy=CachePolicy(enabled=False)))
    assert cache.get_many(KEYS) == [None, None]


def test_a_store_returning_the_wrong_number_of_values_is_an_error() -> None:
    class ShortStore(MemoryStore):
        def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
            return super().get_many(keys)[:-1]

    cache, events = _cache(ShortStore(), ManualClock())
    cache.set_many([(KEYS[0], b"v")])
    assert cache.get_many(KEYS) == [None, None]
    assert events[-1] == ("error", 2)
