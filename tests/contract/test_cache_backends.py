"""The prediction-cache contract on every store: in-process memory and the REAL Redis of this
machine (127.0.0.1:6379, a key prefix of its own per test, deleted afterwards); then Redis failing
under a live cache: a private ``redis-server`` killed, frozen and restarted mid-run."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from sibyl.cache import (
    CachePolicy,
    KeyValueCache,
    MemoryStore,
    RedisStore,
    get_cache,
    make_keys,
    namespace,
)
from tests.contract.cache_support import (
    SHARED_REDIS_URL,
    Events,
    ManualClock,
    PrivateRedis,
    delete_prefix,
    gather_many,
    hammer,
    outage_cache,
    redis_or_skip,
    redis_server_or_skip,
    unique_prefix,
    wait_until_recovered,
)

COLUMNS = ("a", "b")


@dataclass
class Backend:
    kind: str
    cache: KeyValueCache
    advance: Callable[[float], None]
    """Move time forward: the manual clock for memory, a real sleep for Redis."""
    short_ttl_s: float
    events: Events

    def counted(self, result: str) -> int:
        return self.events.total(result)


def _memory() -> Iterator[Backend]:
    clock, events = ManualClock(), Events()
    cache = KeyValueCache(
        MemoryStore(100, clock=clock), default_ttl_s=60, clock=clock, on_result=events.record
    )
    yield Backend("memory", cache, clock.advance, 5.0, events)


def _redis() -> Iterator[Backend]:
    redis_or_skip()
    prefix, events = unique_prefix(), Events()
    store = RedisStore.from_url(SHARED_REDIS_URL, timeout_s=1.0)
    cache = KeyValueCache(
        store, default_ttl_s=60, prefix=prefix, offload=True, on_result=events.record
    )
    try:
        yield Backend("redis", cache, time.sleep, 0.3, events)
    finally:
        cache.close()
        delete_prefix(SHARED_REDIS_URL, prefix)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    yield from (_memory() if request.param == "memory" else _redis())


def keys(model: str, version: str, *rows: Sequence[float]) -> list[str]:
    return make_keys(model, version, list(rows), COLUMNS)


def values_for(keys_: Sequence[str]) -> list[bytes]:
    return [k.encode() for k in keys_]


# ---- reads, writes, TTL -------------------------------------------------------------------


def test_a_miss_is_none_and_a_set_value_comes_back_byte_for_byte(backend: Backend) -> None:
    cache = backend.cache
    ks = keys("m", "1", [1, 2], [3, 4], [5, 6])
    assert cache.get_many(ks) == [None, None, None]
    cache.set_many([(ks[0], b"\x00\xff\x80binary"), (ks[1], b"")])
    assert cache.get_many(ks) == [b"\x00\xff\x80binary", b"", None]
    assert cache.get_many([]) == []
    assert backend.counted("miss") == 4 and backend.counted("hit") == 2
    assert backend.counted("set") == 2
    counts = cache.stats().counts
    assert (counts["hit"], counts["miss"], counts["set"]) == (2, 4, 2)
    assert cache.stats().available


def test_entries_expire_after_their_ttl(backend: Backend) -> None:
    cache = backend.cache
    short, default = keys("m", "1", [1, 2], [3, 4])
    cache.set_many([(short, b"s")], ttl_s=backend.short_ttl_s)
    cache.set_many([(default, b"d")])  # the cache's default TTL, 60 s
    assert cache.get_many([short, default]) == [b"s", b"d"]
    backend.advance(backend.short_ttl_s * 1.7)
    assert cache.get_many([short, default]) == [None, b"d"]


def test_a_policy_ttl_applies_to_computed_entries(backend: Backend) -> None:
    cache = backend.cache
    ks = keys("m", "1", [1, 2])

    async def compute(missing: list[str]) -> list[bytes]:
        return values_for(missing)

    policy = CachePolicy(ttl_s=backend.short_ttl_s)
    assert asyncio.run(cache.get_or_compute(ks, compute, policy=policy)) == values_for(ks)
    assert cache.get_many(ks) == values_for(ks)
    backend.advance(backend.short_ttl_s * 1.7)
    assert cache.get_many(ks) == [None]


def test_an_opted_out_model_is_computed_every_time_and_never_stored(backend: Backend) -> None:
    cache = backend.cache
    ks = keys("m", "1", [1, 2], [1, 2])
    calls: list[list[str]] = []

    async def compute(missing: list[str]) -> list[bytes]:
        calls.append(missing)
        return values_for(missing)

    off = CachePolicy(enabled=False)
    for _ in range(2):
        assert asyncio.run(cache.get_or_compute(ks, compute, policy=off)) == values_for(ks)
    assert calls == [ks, ks]
    assert cache.get_many(ks[:1]) == [None]


# ---- keys: versions, canonical rows, purge ------------------------------------------------


def test_a_new_version_never_reads_the_old_versions_entries(backend: Backend) -> None:
    cache = backend.cache
    (v1,), (v2,) = keys("m", "1", [1, 2]), keys("m", "2", [1, 2])
    assert v1 != v2
    cache.set_many([(v1, b"old")])
    assert cache.get_many([v2, v1]) == [None, b"old"]


def test_the_same_row_written_differently_shares_one_entry(backend: Backend) -> None:
    cache = backend.cache
    (stored,) = make_keys("m", "1", [{"b": 2.0, "a": -0.0}], COLUMNS)
    cache.set_many([(stored, b"hit")])
    same = make_keys("m", "1", [{"a": 0, "b": 2}, [0.0, 2], (-0.0, 2.0)], COLUMNS)
    other = make_keys("m", "1", [[0, 2.5], [2, 0], {"a": 0, "b": True}], COLUMNS)
    assert cache.get_many(same) == [b"hit"] * 3
    assert cache.get_many(other) == [None] * 3


def test_purge_by_version_and_by_model(backend: Backend) -> None:
    cache = backend.cache
    groups = {
        ("churn", "1"): keys("churn", "1", [1, 2], [3, 4]),
        ("churn", "2"): keys("churn", "2", [1, 2]),
        ("churn2", "1"): keys("churn2", "1", [1, 2]),  # a name the model's name is a prefix of
        ("ch*rn", "1"): keys("ch*rn", "1", [1, 2]),  # a glob character in the name
        ("churn/1", "1"): keys("churn/1", "1", [1, 2]),  # a name that looks like model/version
    }
    for ks in groups.values():
        cache.set_many([(k, b"v") for k in ks])

    def alive() -> dict[tuple[str, str], int]:
        return {g: sum(v is not None for v in cache.get_many(ks)) for g, ks in groups.items()}

    assert cache.purge("churn", "1") == 2
    assert alive() == {
        ("churn", "1"): 0,
        ("churn", "2"): 1,
        ("churn2", "1"): 1,
        ("ch*rn", "1"): 1,
        ("churn/1", "1"): 1,
    }
    cache.set_many([(k, b"v") for k in groups[("churn", "1")]])
    assert cache.purge("churn") == 3
    assert alive() == {
        ("churn", "1"): 0,
        ("churn", "2"): 0,
        ("churn2", "1"): 1,
        ("ch*rn", "1"): 1,
        ("churn/1", "1"): 1,
    }
    assert cache.purge("ch*rn") == 1 and cache.purge("nobody") == 0
    assert alive()[("churn2", "1")] == 1
    assert backend.counted("purge") == 4
    assert namespace("churn/1") != namespace("churn", "1")


# ---- single flight ------------------------------------------------------------------------


def test_100_concurrent_identical_requests_compute_once(backend: Backend) -> None:
    cache = backend.cache
    ks = keys("m", "1", [1, 2], [3, 4])
    calls: list[list[str]] = []

    async def compute(missing: list[str]) -> list[bytes]:
        calls.append(missing)
        await asyncio.sleep(0.05)
        return values_for(missing)

    async def go() -> list[list[bytes]]:
        return await asyncio.gather(*(cache.get_or_compute(ks, compute) for _ in range(100)))

    outs = asyncio.run(go())
    assert calls == [ks]
    assert all(out == values_for(ks) for out in outs)
    assert backend.counted("coalesced") == 99 * 2
    assert backend.counted("miss") == 2 and backend.counted("set") == 2
    assert asyncio.run(cache.get_or_compute(ks, compute)) == values_for(ks)  # now cached
    assert len(calls) == 1 and backend.counted("hit") == 2


def test_a_request_computes_only_what_is_missing_and_each_duplicate_once(backend: Backend) -> None:
    cache = backend.cache
    a, b, c = keys("m", "1", [1, 2], [3, 4], [5, 6])
    cache.set_many([(b, b"cached")])
    calls: list[list[str]] = []

    async def compute(missing: list[str]) -> list[bytes]:
        calls.append(missing)
        return values_for(missing)

    out = asyncio.run(cache.get_or_compute([a, b, a, c, a], compute))
    assert out == [a.encode(), b"cached", a.encode(), c.encode(), a.encode()]
    assert calls == [[a, c]]


def test_a_compute_error_reaches_every_joiner_and_nothing_is_cached(backend: Backend) -> None:
    cache = backend.cache
    ks = keys("m", "1", [1, 2])
    calls = 0

    async def failing(missing: list[str]) -> list[bytes]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        raise RuntimeError("model exploded")

    async def go() -> list[BaseException | list[bytes]]:
        return await asyncio.gather(
            *(cache.get_or_compute(ks, failing) for _ in range(10)), return_exceptions=True
        )

    outs = asyncio.run(go())
    assert calls == 1
    assert all(isinstance(o, RuntimeError) and "exploded" in str(o) for o in outs)
    assert cache.get_many(ks) == [None]


def test_joiners_of_a_cancelled_leader_compute_on_their_own(backend: Backend) -> None:
    cache = backend.cache
    ks = keys("m", "1", [1, 2])
    calls = 0
    computing = asyncio.Event()

    async def compute(missing: list[str]) -> list[bytes]:
        nonlocal calls
        calls += 1
        computing.set()
        await asyncio.sleep(0.1)
        return values_for(missing)

    async def go() -> tuple[list[bytes], list[bytes]]:
        leader = asyncio.create_task(cache.get_or_compute(ks, compute))
        await computing.wait()
        joiners = [asyncio.create_task(cache.get_or_compute(ks, compute)) for _ in range(5)]
        await asyncio.sleep(0.01)
        leader.cancel()
        outs = await asyncio.gather(*joiners)
        with pytest.raises(asyncio.CancelledError):
            await leader
        return outs[0], outs[-1]

    first, last = asyncio.run(go())
    assert first == last == values_for(ks)
    assert calls == 2  # the cancelled leader's, then one joiner's for all of them


def test_many_threads_read_and_write_consistently(backend: Backend) -> None:
    cache = backend.cache
    ks = [keys("m", "1", [i, t])[0] for t in range(8) for i in range(20)]
    errors: list[BaseException] = []

    def worker(mine: list[str]) -> None:
        try:
            for _ in range(10):
                cache.set_many([(k, k.encode()) for k in mine])
                got = cache.get_many(mine)
                assert all(v is None or v == k.encode() for k, v in zip(mine, got, strict=True))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(ks[t * 20 : (t + 1) * 20],)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert cache.stats().counts["error"] == cache.stats().counts["unavailable"] == 0


# ---- memory only: the LRU bound -------------------------------------------------------------


def test_the_memory_store_evicts_the_least_recently_used_entry() -> None:
    cache = get_cache("memory://?max_entries=3")
    a, b, c, d = keys("m", "1", [1, 0], [2, 0], [3, 0], [4, 0])
    cache.set_many([(a, b"a"), (b, b"b"), (c, b"c")])
    assert cache.get_many([a]) == [b"a"]  # a is now the most recently used
    cache.set_many([(d, b"d")])
    assert cache.get_many([a, b, c, d]) == [b"a", None, b"c", b"d"]
    assert cache.stats().entries == 3


# ---- Redis failing under a live cache -------------------------------------------------------


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(redis_server_or_skip(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.mark.redis
def test_redis_killed_mid_run_serves_misses_then_recovers(private_redis: PrivateRedis) -> None:
    cache, store, events = outage_cache(private_redis.url)
    ks = keys("m", "1", [1, 2], [3, 4])
    cache.set_many([(ks[0], b"v")])
    assert cache.get_many(ks) == [b"v", None]
    private_redis.kill()
    before = store.total
    seconds = hammer(cache, ks, 1000)
    attempts = store.total - before
    assert seconds < 1.0
    assert attempts <= 2 + seconds / 0.2, attempts  # the first failure, then one probe per back-off
    # every key of every call counted unavailable (500 reads × 2 keys + 500 writes × 1), no error
    assert sum(n for r, n in events[-1000:] if r == "unavailable") == 1500
    assert not any(r == "error" for r, _ in events)
    assert not cache.stats().available

    async def compute(missing: list[str]) -> list[bytes]:
        return values_for(missing)

    assert asyncio.run(cache.get_or_compute(ks, compute)) == values_for(ks)  # uncached, no error
    assert cache.purge("m") == 0

    private_redis.start()  # same port, empty
    wait_until_recovered(cache, ks[1])
    assert cache.stats().available
    cache.close()


@pytest.mark.redis
def test_a_hanging_redis_costs_one_timeout_per_back_off_not_one_per_call(
    private_redis: PrivateRedis,
) -> None:
    cache, store, events = outage_cache(private_redis.url)
    ks = keys("m", "1", [1, 2])
    cache.set_many([(ks[0], b"v")])
    private_redis.freeze()  # connections accepted, never answered: every call would time out
    try:
        seconds = hammer(cache, ks, 1000)  # without the back-off: 1000 × 0.1 s
        assert seconds < 1.0
        assert store.total - 1 <= 2 + seconds / 0.2
        assert any(r == "unavailable" for r, _ in events)

        async def compute(missing: list[str]) -> list[bytes]:
            return values_for(missing)

        start = time.perf_counter()
        outs = asyncio.run(gather_many(cache, ks, compute, 200))
        assert all(o == values_for(ks) for o in outs)
        assert time.perf_counter() - start < 1.0
    finally:
        private_redis.thaw()
    wait_until_recovered(cache, ks[0])
    cache.close()
