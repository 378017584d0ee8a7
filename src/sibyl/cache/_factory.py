"""``get_cache(None | url | object)``: one argument picks the backend."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from sibyl.cache._cache import KeyValueCache
from sibyl.cache._memory import MemoryStore
from sibyl.cache._types import CacheStore, OnResult, PredictionCache
from sibyl.errors import InvalidInputError

SUPPORTED = (
    "memory://?max_entries=10000&ttl_s=300",
    "redis://host:6379/0?ttl_s=300&timeout_s=0.1 (or rediss:// for TLS)",
)
"""The cache URLs :func:`get_cache` understands, with their defaults."""

_COMMON: dict[str, Callable[[str], Any]] = {
    "ttl_s": float,
    "prefix": str,
    "backoff_s": float,
    "max_backoff_s": float,
}
_MEMORY: dict[str, Callable[[str], Any]] = {**_COMMON, "max_entries": int}
_REDIS: dict[str, Callable[[str], Any]] = {**_COMMON, "timeout_s": float, "max_connections": int}


def get_cache(
    cache: str | PredictionCache | CacheStore | None = None, *, on_result: OnResult | None = None
) -> PredictionCache:
    """The prediction cache ``cache`` names.

    * ``None`` or ``"memory://"``: an in-process LRU + TTL (``max_entries``, default 10 000;
      ``ttl_s``, default 300).
    * ``"redis://[[user]:password@]host:port/db"`` (``rediss://`` for TLS): Redis, shared by every
      replica; needs ``pip install 'sibyl[redis]'``. ``timeout_s`` (default 0.1) bounds every
      socket operation, ``max_connections`` (default 32) the pool.
    * Both take ``ttl_s``, ``prefix`` (default ``sibyl:cache:``), ``backoff_s`` (default 1) and
      ``max_backoff_s`` (default 10 for Redis) as query parameters.
    * A :class:`PredictionCache` is returned as is; a bare :class:`CacheStore` is wrapped in a
      :class:`KeyValueCache`.

    ``on_result`` (the metrics hook) applies to the caches built here. Raises
    ``InvalidInputError`` for an unknown scheme or parameter (naming what is supported) and
    ``MissingExtraError`` for Redis without redis-py.
    """
    if cache is None:
        cache = "memory://"
    if isinstance(cache, str):
        return _from_url(cache, on_result)
    if isinstance(cache, PredictionCache):
        return cache
    if all(callable(getattr(cache, m, None)) for m in ("get_many", "set_many", "delete_prefix")):
        return KeyValueCache(cache, on_result=on_result)
    raise TypeError(
        f"get_cache takes None, a URL, a PredictionCache or a CacheStore, "
        f"got {type(cache).__name__}"
    )


def _from_url(url: str, on_result: OnResult | None) -> PredictionCache:
    try:
        return _build(url, on_result)
    except ValueError as exc:  # a bound out of range: ttl_s ≤ 0, max_entries < 1, …
        raise InvalidInputError(f"Cache URL {_safe(url)!r}: {exc}", field="cache") from None


def _build(url: str, on_result: OnResult | None) -> PredictionCache:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        params = _params(url, parts.query, _MEMORY)
        store = MemoryStore(params.pop("max_entries", 10_000))
        return KeyValueCache(store, on_result=on_result, name="memory", **_cache_args(params))
    if scheme in ("redis", "rediss"):
        from sibyl.cache._redis import RedisStore

        params = _params(url, parts.query, _REDIS)
        bare = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        redis_store = RedisStore.from_url(
            bare,
            timeout_s=params.pop("timeout_s", 0.1),
            max_connections=params.pop("max_connections", 32),
        )
        return KeyValueCache(redis_store, on_result=on_result, offload=True, **_cache_args(params))
    raise InvalidInputError(_unknown_scheme(url), field="cache")


def _cache_args(params: Mapping[str, Any]) -> dict[str, Any]:
    args = {"default_ttl_s" if k == "ttl_s" else k: v for k, v in params.items()}
    args.setdefault("backoff_s", 1.0)
    args.setdefault("max_backoff_s", max(10.0, args["backoff_s"]))
    return args


def _params(url: str, query: str, accepted: Mapping[str, Callable[[str], Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in parse_qsl(query, keep_blank_values=True):
        parse = accepted.get(name)
        if parse is None:
            raise InvalidInputError(
                f"Unknown cache URL parameter {name!r} in {_safe(url)!r}; accepted: "
                f"{', '.join(sorted(accepted))}",
                field="cache",
            )
        try:
            out[name] = parse(raw)
        except ValueError:
            raise InvalidInputError(
                f"Cache URL parameter {name}={raw!r} is not a valid {parse.__name__}", field="cache"
            ) from None
    return out


def _unknown_scheme(url: str) -> str:
    message = (
        f"Unknown cache URL {_safe(url)!r}; supported: {'; '.join(SUPPORTED)}, "
        "or leave it empty for the in-process cache"
    )
    if importlib.util.find_spec("redis") is None:
        message += ". Redis needs redis-py: `pip install 'sibyl[redis]'`"
    return message


def _safe(url: str) -> str:
    from sibyl.cache._redis import redact

    return redact(url) if "@" in url else url
