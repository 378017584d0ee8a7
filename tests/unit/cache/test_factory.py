"""``get_cache(None | url | object)``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sibyl.cache import KeyValueCache, MemoryStore, RedisStore, get_cache
from sibyl.errors import InvalidInputError, MissingExtraError
from tests.contract.cache_support import Events
from tests.helpers import free_port


def test_none_is_the_in_process_cache() -> None:
    cache = get_cache(None)
    assert isinstance(cache, KeyValueCache) and isinstance(cache.store, MemoryStore)
    assert (cache.store.max_entries, cache.default_ttl_s) == (10_000, 300.0)
    assert cache.stats().backend == "memory"


def test_memory_url_parameters() -> None:
    cache = get_cache("memory://?max_entries=5&ttl_s=2.5&prefix=x:&backoff_s=0.5")
    assert isinstance(cache, KeyValueCache) and isinstance(cache.store, MemoryStore)
    assert (cache.store.max_entries, cache.default_ttl_s, cache.prefix) == (5, 2.5, "x:")
    assert cache._backoff.initial_s == 0.5


def test_redis_url_builds_a_bounded_offloaded_client_without_its_password() -> None:
    events = Events()
    port = free_port()  # nothing listens there
    cache = get_cache(
        f"redis://:secret@127.0.0.1:{port}/3?ttl_s=9&timeout_s=0.05",
        on_result=events.record,
    )
    assert isinstance(cache, KeyValueCache) and isinstance(cache.store, RedisStore)
    kwargs = cache.store._client.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"], kwargs["db"]) == (
        0.05,
        0.05,
        3,
    )
    assert cache._offload and cache.default_ttl_s == 9.0
    assert cache.stats().backend == f"redis://127.0.0.1:{port}/3"
    assert cache.get_many(["k"]) == [None]  # a miss, not an error
    assert events == [("unavailable", 1)]
    cache.close()


def test_objects_are_used_as_they_are_and_bare_stores_are_wrapped() -> None:
    cache = KeyValueCache(MemoryStore())
    assert get_cache(cache) is cache
    wrapped = get_cache(MemoryStore(7))
    assert isinstance(wrapped, KeyValueCache) and isinstance(wrapped.store, MemoryStore)
    with pytest.raises(TypeError, match="takes None, a URL"):
        get_cache(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memcached://h:1", "Unknown cache URL 'memcached://h:1'; supported: memory://"),
        ("redis-cluster://h", "rediss://"),
        ("memory://?ttl=3", "parameter 'ttl'.*accepted: backoff_s, max_backoff_s, max_entries"),
        ("memory://?max_entries=many", "max_entries='many' is not a valid int"),
        ("memory://?ttl_s=0", "ttl_s must be a finite number"),
        ("memory://?max_entries=0", "max_entries must be ≥ 1"),
        ("redis://h?max_entries=3", "accepted: backoff_s, max_backoff_s, max_connections"),
        ("redis://:pw@h:1/0?x=1", r"'redis://h:1/0'"),
    ],
)
def test_bad_urls_say_what_is_supported(url: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        get_cache(url)
    assert "pw" not in str(info.value)


def test_without_redis_py_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis → ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'sibyl\[redis\]'"):
        get_cache("redis://127.0.0.1:6379/0")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(InvalidInputError, match=r"pip install 'sibyl\[redis\]'"):
        get_cache("valkey://h")


def test_importing_the_package_does_not_import_redis() -> None:
    code = "import sys, sibyl.cache; sys.exit('redis' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    assert result.returncode == 0, result.stderr
