"""Cache test support: the shared Redis on 127.0.0.1:6379 (own key prefix per test, cleaned up), a
private ``redis-server`` the tests may kill, pause and restart, a clock tests move by hand, and a
store wrapper that counts the calls reaching the store. Used by
``tests/contract/test_cache_backends.py`` and ``tests/unit/cache``."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from sibyl.cache import CacheStore, Compute, KeyValueCache, RedisStore
from tests.helpers import free_port

SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"


def _unavailable(reason: str) -> None:
    """Skip, or fail under ``CI=true`` (CI must not silently drop the Redis half)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def redis_or_skip() -> None:
    """Skip when the shared Redis does not answer; fail instead when ``CI=true``."""
    import redis

    client = redis.Redis.from_url(SHARED_REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable(f"Redis on 127.0.0.1:6379 does not answer ({exc}); start it to run this")
    finally:
        client.close()


def redis_server_or_skip() -> str:
    """The ``redis-server`` binary; skip (fail under ``CI=true``) when it is not installed."""
    path = shutil.which("redis-server")
    if path is None:
        _unavailable("redis-server is not installed; install it to run the Redis outage tests")
    assert path is not None
    return path


def unique_prefix() -> str:
    """A key prefix no other run uses; ``[*]`` makes purge prove it escapes glob characters."""
    return f"sibyl-test:{uuid.uuid4().hex[:12]}:[*]:"


def delete_prefix(url: str, prefix: str) -> None:
    """Remove every key under ``prefix`` (test clean-up), with a client of its own."""
    from sibyl.cache import RedisStore

    store = RedisStore.from_url(url, timeout_s=2)
    try:
        store.delete_prefix(prefix)
    finally:
        store.close()


class Events(list[tuple[str, int]]):
    """What the metrics hook received: ``on_result=events.record``."""

    def record(self, result: str, n: int) -> None:
        self.append((result, n))

    def total(self, result: str) -> int:
        return sum(n for r, n in self if r == result)


class ManualClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingStore:
    """A :class:`CacheStore` that forwards to ``inner`` and counts the calls that reach it."""

    def __init__(self, inner: CacheStore) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.name = getattr(inner, "name", "counted")

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self.calls["get_many"] += 1
        return self.inner.get_many(keys)

    def set_many(self, items: Sequence[tuple[str, bytes]], ttl_s: float) -> None:
        self.calls["set_many"] += 1
        self.inner.set_many(items, ttl_s)

    def delete_prefix(self, prefix: str) -> int:
        self.calls["delete_prefix"] += 1
        return self.inner.delete_prefix(prefix)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    @property
    def total(self) -> int:
        return sum(self.calls.values())


class PrivateRedis:
    """A ``redis-server`` of this test only, without persistence, on a fixed free port, so it can
    be killed (SIGKILL), frozen (SIGSTOP: connections hang, as with a dead host) and restarted."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--daemonize",
            "no",
        ]
        log = (self.workdir / f"redis-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self._wait_ready()

    def kill(self) -> None:
        """SIGKILL the server and reap it: its port refuses connections afterwards."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def freeze(self) -> None:
        """SIGSTOP: the kernel still accepts connections, nothing answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def _wait_ready(self, timeout: float = 10.0) -> None:
        import redis

        client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.process.returncode}")
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.02)
        finally:
            client.close()


# ---- a cache over a Redis that fails ------------------------------------------------------


def outage_cache(url: str) -> tuple[KeyValueCache, CountingStore, Events]:
    """A cache over ``url`` with a 0.1 s timeout and a 0.2-0.4 s back-off, its store counting
    the calls that reach Redis, and the metrics-hook events."""
    events = Events()
    store = CountingStore(RedisStore.from_url(url, timeout_s=0.1))
    cache = KeyValueCache(
        store,
        backoff_s=0.2,
        max_backoff_s=0.4,
        offload=True,
        on_result=events.record,
    )
    return cache, store, events


def hammer(cache: KeyValueCache, ks: list[str], calls: int) -> float:
    """``calls`` reads and writes alternating; every read must be a miss; returns the seconds."""
    start = time.perf_counter()
    for i in range(calls // 2):
        assert cache.get_many(ks) == [None] * len(ks)
        cache.set_many([(ks[i % len(ks)], b"x")])
    return time.perf_counter() - start


def wait_until_recovered(cache: KeyValueCache, key: str, timeout: float = 5.0) -> None:
    """Write and read ``key`` until the cache uses Redis again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cache.set_many([(key, b"back")])
        if cache.get_many([key]) == [b"back"]:
            return
        time.sleep(0.05)
    raise AssertionError(f"the cache did not use Redis again within {timeout}s")


async def gather_many(
    cache: KeyValueCache, ks: list[str], compute: Compute, n: int
) -> list[list[bytes]]:
    """``n`` concurrent ``get_or_compute(ks, compute)``."""
    return await asyncio.gather(*(cache.get_or_compute(ks, compute) for _ in range(n)))
