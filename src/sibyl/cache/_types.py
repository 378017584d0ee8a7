"""The contracts of the prediction cache: the interface the service calls, the store it is built on,
the per-model policy, the result names the metrics hook receives."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeAlias, runtime_checkable


class CacheResult(StrEnum):
    """What happened to cache keys; the ``result`` label of ``ml_cache_operations_total``.

    Every key looked up counts exactly one of ``hit``, ``miss``, ``coalesced`` (it joined an
    identical in-flight lookup or computation of the same process instead of asking the store),
    ``error`` (the store answered with an error) or ``unavailable`` (the store could not be reached,
    or was skipped while it is backing off). Every key written counts ``set``, ``error`` or
    ``unavailable``. ``purge`` counts purge calls (one per call, whatever it deleted).
    """

    HIT = "hit"
    MISS = "miss"
    COALESCED = "coalesced"
    SET = "set"
    ERROR = "error"
    UNAVAILABLE = "unavailable"
    PURGE = "purge"


OnResult: TypeAlias = Callable[[str, int], None]
"""Metrics hook ``on_result(result, n)``: ``n`` keys (or 1 purge) had ``result`` (a
:class:`CacheResult` value). Called from any thread; must be cheap and never raise."""

Compute: TypeAlias = Callable[[list[str]], Awaitable[Sequence[bytes]]]
"""``compute(missing_keys)`` → one encoded value per key, in the same order."""


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """Caching of one model, as configured by the operator.

    ``ttl_s`` is how long an entry lives (``None``: the cache's default TTL); ``enabled=False``
    opts the model out: :meth:`PredictionCache.get_or_compute` then computes every row and neither
    reads nor writes the cache.
    """

    ttl_s: float | None = None
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.ttl_s is not None:
            check_ttl(self.ttl_s)


def check_ttl(ttl_s: float) -> float:
    """``ttl_s`` if it is a finite number of seconds > 0, else ``ValueError`` saying so."""
    if not (isinstance(ttl_s, int | float) and math.isfinite(ttl_s) and ttl_s > 0):
        raise ValueError(f"cache ttl_s must be a finite number of seconds > 0, got {ttl_s!r}")
    return float(ttl_s)


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of one cache: where it stores, whether the store answers, what it counted.

    ``backend`` names the store without credentials (``memory``, ``redis://host:6379/0``);
    ``available`` is ``False`` while the cache is skipping an unreachable store; ``counts`` holds
    every :class:`CacheResult` value; ``entries`` is the number of stored entries when the store
    can tell cheaply (memory), else ``None``.
    """

    backend: str
    available: bool
    counts: Mapping[str, int]
    entries: int | None


class CacheStore(Protocol):
    """Where entries live: bytes under string keys, with a TTL. The small interface a new
    technology implements; :class:`~sibyl.cache.KeyValueCache` adds everything else.

    Contract: every method is safe to call from several threads at once and may block for at most
    the store's own timeout. Keys arrive already prefixed and namespaced
    (``<prefix><model>/<version>/<digest>``). A method raises
    :class:`~sibyl.errors.BackendUnavailableError` when the store cannot be reached (the cache
    then backs off) and any other exception when it answered with an error; the cache never
    passes either to its callers.
    """

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The value of each key in order, ``None`` where absent or expired."""
        ...

    def set_many(self, items: Sequence[tuple[str, bytes]], ttl_s: float) -> None:
        """Store every ``(key, value)`` for ``ttl_s`` seconds, replacing what was there.
        A bounded store may evict other entries to make room."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with ``prefix`` (the third method: what ``purge`` needs);
        returns how many were deleted. Entries written while it runs may survive."""
        ...


@runtime_checkable
class PredictionCache(Protocol):
    """Encoded per-row model outputs by cache key; what the service calls around a prediction.

    Keys come from :func:`~sibyl.cache.make_keys` (model, resolved version, canonical digest of
    the row). Values are ``bytes``.

    Contract:

    * **Safety.** ``get_many``, ``set_many``, ``purge``, ``stats`` and ``close`` may be called from
      any thread; they block for at most the store's timeout (microseconds in memory, a network
      round trip for Redis). ``get_or_compute`` is task-safe within an event loop and coalesces
      identical in-flight keys of that loop.
    * **A miss** is ``None`` in the list ``get_many`` returns. Expired, purged, evicted and never
      written entries are all misses.
    * **Failures never raise.** When the store fails or cannot be reached, reads behave as misses,
      writes and purges as no-ops, the failure is counted (``error`` / ``unavailable``) and logged,
      and an unreachable store is skipped for a back-off period instead of paying its timeout on
      every call. Only caller mistakes raise: a value that is not ``bytes`` (``TypeError``), a
      ``ttl_s`` ≤ 0 (``ValueError``), a ``compute`` that raises (its exception, shared by every
      caller that joined the computation) or returns the wrong number of values (``ValueError``).
    """

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The cached value of each key in order; ``None`` for a miss."""
        ...

    def set_many(self, items: Sequence[tuple[str, bytes]], ttl_s: float | None = None) -> None:
        """Cache each ``(key, value)`` for ``ttl_s`` seconds (``None``: the default TTL)."""
        ...

    def purge(self, model: str, version: str | None = None) -> int:
        """Drop the entries of ``model`` (of one ``version`` when given); returns how many were
        deleted (0 when the store is unavailable). Cost grows with the store's size."""
        ...

    def stats(self) -> CacheStats:
        """Counts since creation, availability and size."""
        ...

    async def get_or_compute(
        self, keys: Sequence[str], compute: Compute, *, policy: CachePolicy | None = None
    ) -> list[bytes]:
        """The value of every key: cached ones from the cache, the others from one call of
        ``compute(missing_keys)`` whose results are then cached.

        Duplicate keys are computed once; a key that another task of this loop is already looking
        up or computing is awaited instead of computed again (single flight). If the task leading a
        computation is cancelled, the tasks that joined it retry on their own. ``policy`` applies a
        model's TTL and opt-out.
        """
        ...

    def close(self) -> None:
        """Release connections and threads; the cache must not be used afterwards."""
        ...
