"""The prediction cache: encoded per-row outputs by model, resolved version and row digest.

``get_cache(None | url | object)`` picks the backend: an in-process LRU + TTL by default, Redis
(``redis://…``, the ``redis`` extra, imported on use) when several replicas should share it.
Every backend is a
small :class:`CacheStore` (get, set, delete by prefix) under the one :class:`KeyValueCache`, which
adds what the service relies on: keys namespaced per model and version (:func:`make_keys`), a TTL
policy per model (:class:`CachePolicy`), failures served as misses with a back-off instead of
errors, single flight for identical in-flight requests, and a metrics hook
(:class:`CacheResult`)::

    cache = get_cache(settings.cache_url, on_result=metrics.on_cache_result)
    keys = make_keys("churn", "3", rows, columns=schema.names)
    outputs = await cache.get_or_compute(keys, predict_missing, policy=CachePolicy(ttl_s=60))
    cache.purge("churn", "3")
"""

from sibyl.cache._backoff import Backoff
from sibyl.cache._cache import KeyValueCache
from sibyl.cache._factory import SUPPORTED, get_cache
from sibyl.cache._keys import canonical_json, make_keys, namespace, row_digest
from sibyl.cache._memory import MemoryStore
from sibyl.cache._redis import RedisStore
from sibyl.cache._types import (
    CachePolicy,
    CacheResult,
    CacheStats,
    CacheStore,
    Compute,
    OnResult,
    PredictionCache,
)

__all__ = [
    "SUPPORTED",
    "Backoff",
    "CachePolicy",
    "CacheResult",
    "CacheStats",
    "CacheStore",
    "Compute",
    "KeyValueCache",
    "MemoryStore",
    "OnResult",
    "PredictionCache",
    "RedisStore",
    "canonical_json",
    "get_cache",
    "make_keys",
    "namespace",
    "row_digest",
]
