"""The shared store: Redis through redis-py (the ``redis`` extra), for N replicas."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from sibyl.errors import BackendUnavailableError, MissingExtraError

if TYPE_CHECKING:
    import redis

_GLOB = re.compile(r"([*?\[\]\\])")
_SET_ALL = (  # one command instead of a pipeline of SETs: half the time for 32 entries
    "for i, key in ipairs(KEYS) do redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1]) end "
    "return #KEYS"
)
_UNLINK_BATCH = 500


class RedisStore:
    """A :class:`~sibyl.cache.CacheStore` in Redis: ``MGET`` to read, a Lua script doing one
    ``SET … PX`` per entry to write, ``SCAN MATCH prefix*`` + ``UNLINK`` to delete a namespace.

    Differs from the contract only in how it fails: a connection error or a timeout becomes
    :class:`~sibyl.errors.BackendUnavailableError`; redis-py's own retries are off (the cache's
    back-off replaces them), so a call costs at most ``timeout_s`` when Redis hangs. Eviction
    under memory pressure is Redis's ``maxmemory-policy``; purge cost grows with the database size.
    """

    def __init__(self, client: redis.Redis, *, name: str = "redis") -> None:
        import redis

        self._client = client
        self.name = name
        self._unreachable = (redis.ConnectionError, redis.TimeoutError)
        self._set_all = client.register_script(_SET_ALL)

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 0.1, max_connections: int = 32) -> RedisStore:
        """Connect lazily to ``redis[s]://[[user]:password@]host:port/db``; every socket operation
        (connect included) gives up after ``timeout_s``. Raises ``MissingExtraError`` without
        redis-py."""
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:
            raise MissingExtraError("redis", "redis") from exc
        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            max_connections=max_connections,
        )
        return cls(client, name=redact(url))

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """See :meth:`CacheStore.get_many`: one ``MGET``."""
        with self._translated():
            return self._client.mget(keys)  # type: ignore[return-value]  # bytes: no decoding

    def set_many(self, items: Sequence[tuple[str, bytes]], ttl_s: float) -> None:
        """See :meth:`CacheStore.set_many`: one ``EVALSHA`` of a script doing ``SET … PX`` per
        entry (redis-py loads the script again after a Redis restart)."""
        px = max(1, round(ttl_s * 1000))
        with self._translated():
            self._set_all(keys=[k for k, _ in items], args=[px, *[v for _, v in items]])

    def delete_prefix(self, prefix: str) -> int:
        """See :meth:`CacheStore.delete_prefix`: ``SCAN`` the database, ``UNLINK`` in batches."""
        deleted = 0
        batch: list[Any] = []
        with self._translated():
            for key in self._client.scan_iter(match=_GLOB.sub(r"\\\1", prefix) + "*", count=1000):
                batch.append(key)
                if len(batch) >= _UNLINK_BATCH:
                    deleted += self._client.unlink(*batch)
                    batch.clear()
            if batch:
                deleted += self._client.unlink(*batch)
        return deleted

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __repr__(self) -> str:
        return f"RedisStore({self.name})"

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except self._unreachable as exc:
            raise BackendUnavailableError(
                f"Redis at {self.name} cannot be reached ({type(exc).__name__}: {exc}); check "
                "that it runs and that the cache URL is right"
            ) from exc


def redact(url: str) -> str:
    """``url`` without its password and query string."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
