"""The one prediction cache, over any :class:`CacheStore`: prefixing, TTL policy, failure
handling with back-off, single flight, counts and the metrics hook."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import structlog

from sibyl.cache._backoff import Backoff
from sibyl.cache._flight import SingleFlight
from sibyl.cache._keys import namespace
from sibyl.cache._types import (
    CachePolicy,
    CacheResult,
    CacheStats,
    CacheStore,
    Compute,
    OnResult,
    check_ttl,
)
from sibyl.errors import BackendUnavailableError

log = structlog.get_logger(__name__)
T = TypeVar("T")
_ERROR_LOG_EVERY_S = 60.0


class KeyValueCache:
    """A :class:`~sibyl.cache.PredictionCache` over a :class:`~sibyl.cache.CacheStore`.

    Keys are stored as ``prefix + key`` (so several deployments can share one Redis). A failing
    store is handled as the contract says: ``BackendUnavailableError`` opens a back-off circuit
    (``backoff_s``, doubling up to ``max_backoff_s``) during which calls count ``unavailable``
    without touching the store; any other store exception counts ``error`` (logged at most once a
    minute). ``offload=True`` runs the store calls of :meth:`get_or_compute` on a small private
    thread pool instead of the event loop (for network stores). ``on_result`` is the metrics hook.
    """

    def __init__(
        self,
        store: CacheStore,
        *,
        default_ttl_s: float = 300.0,
        prefix: str = "sibyl:cache:",
        on_result: OnResult | None = None,
        backoff_s: float = 1.0,
        max_backoff_s: float = 10.0,
        offload: bool = False,
        name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.default_ttl_s = check_ttl(default_ttl_s)
        self.prefix = prefix
        self.name: str = name or str(getattr(store, "name", type(store).__name__))
        self._on_result = on_result
        self._backoff = Backoff(backoff_s, max_backoff_s, name=self.name, clock=clock)
        self._offload = offload
        self._executor: ThreadPoolExecutor | None = None
        self._flights = SingleFlight()
        self._counts = dict.fromkeys(CacheResult, 0)
        self._lock = threading.Lock()
        self._clock = clock
        self._error_logged_at = -_ERROR_LOG_EVERY_S

    # ---- the synchronous interface --------------------------------------------------------

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """See :meth:`PredictionCache.get_many`."""
        n = len(keys)
        if n == 0:
            return []
        p = self.prefix
        ok, values = self._call(n, lambda: self.store.get_many([p + k for k in keys]))
        if not ok or values is None:
            return [None] * n
        if len(values) != n:  # a broken store: not worth trusting any of it
            self._count(CacheResult.ERROR, n)
            self._log_error(ValueError(f"store returned {len(values)} values for {n} keys"))
            return [None] * n
        misses = values.count(None)
        self._count(CacheResult.HIT, n - misses)
        self._count(CacheResult.MISS, misses)
        return values

    def set_many(self, items: Sequence[tuple[str, bytes]], ttl_s: float | None = None) -> None:
        """See :meth:`PredictionCache.set_many`."""
        ttl = self.default_ttl_s if ttl_s is None else check_ttl(ttl_s)
        for _, value in items:
            if type(value) is not bytes:
                raise TypeError(f"cache values are bytes, got {type(value).__name__}")
        if not items:
            return
        p = self.prefix
        stored = [(p + k, v) for k, v in items]
        if self._call(len(items), lambda: self.store.set_many(stored, ttl))[0]:
            self._count(CacheResult.SET, len(items))

    def purge(self, model: str, version: str | None = None) -> int:
        """See :meth:`PredictionCache.purge`."""
        self._count(CacheResult.PURGE, 1)
        prefix = self.prefix + namespace(model, version)
        deleted = self._call(1, lambda: self.store.delete_prefix(prefix))[1]
        log.info("cache purged", model=model, version=version, deleted=deleted, store=self.name)
        return deleted or 0

    def stats(self) -> CacheStats:
        """See :meth:`PredictionCache.stats`."""
        with self._lock:
            counts = {str(k): v for k, v in self._counts.items()}
        sized = getattr(self.store, "__len__", None)
        return CacheStats(
            self.name, not self._backoff.is_open, counts, sized() if callable(sized) else None
        )

    def close(self) -> None:
        """See :meth:`PredictionCache.close`; closes the store too when it can be closed."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        closer = getattr(self.store, "close", None)
        if callable(closer):
            closer()

    # ---- the asynchronous interface -------------------------------------------------------

    async def get_or_compute(
        self, keys: Sequence[str], compute: Compute, *, policy: CachePolicy | None = None
    ) -> list[bytes]:
        """See :meth:`PredictionCache.get_or_compute`."""
        if policy is not None and not policy.enabled:
            values = list(await compute(list(keys)))
            if len(values) != len(keys):
                raise ValueError(f"compute returned {len(values)} values for {len(keys)} keys")
            return values
        ttl_s = None if policy is None else policy.ttl_s

        async def lookup(own: list[str]) -> list[bytes | None]:
            return await self._run(lambda: self.get_many(own))

        async def store(items: list[tuple[str, bytes]]) -> None:
            await self._run(lambda: self.set_many(items, ttl_s))

        sync = None if self._offload else self.get_many
        values, joined = await self._flights.run(keys, lookup, compute, store, sync_lookup=sync)
        self._count(CacheResult.COALESCED, joined)
        return values

    # ---- internals ------------------------------------------------------------------------

    async def _run(self, call: Callable[[], T]) -> T:
        if not self._offload:
            return call()
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(4, thread_name_prefix="sibyl-cache")
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _call(self, n: int, call: Callable[[], T]) -> tuple[bool, T | None]:
        """``(True, call())`` on the store, or ``(False, None)`` after counting why it could not
        be used for ``n`` keys."""
        if not self._backoff.allow():
            self._count(CacheResult.UNAVAILABLE, n)
            return False, None
        try:
            result = call()
        except BackendUnavailableError as exc:
            self._backoff.failure(exc)
            self._count(CacheResult.UNAVAILABLE, n)
            return False, None
        except Exception as exc:
            self._backoff.success()  # it answered, with an error
            self._count(CacheResult.ERROR, n)
            self._log_error(exc)
            return False, None
        self._backoff.success()
        return True, result

    def _count(self, result: CacheResult, n: int) -> None:
        if n <= 0 and result is not CacheResult.PURGE:
            return
        with self._lock:
            self._counts[result] += n
        if self._on_result is not None:
            try:
                self._on_result(result.value, n)
            except Exception:  # a broken hook must not break predictions
                log.exception("cache metrics hook failed", result=result.value)

    def _log_error(self, exc: BaseException) -> None:
        now = self._clock()
        if now - self._error_logged_at >= _ERROR_LOG_EVERY_S:
            self._error_logged_at = now
            log.warning(
                "cache store error; serving uncached",
                store=self.name,
                error=f"{type(exc).__name__}: {exc}",
            )

    def __repr__(self) -> str:
        return f"KeyValueCache({self.store!r}, prefix={self.prefix!r})"
