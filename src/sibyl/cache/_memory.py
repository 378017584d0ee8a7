"""The in-process store: a bounded LRU with a TTL per entry (the embedded default)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence


class MemoryStore:
    """A :class:`~sibyl.cache.CacheStore` in this process's memory.

    Differs from the contract in that it never fails. It holds at most ``max_entries`` entries and
    evicts the least recently used (read or written) first; an expired entry is dropped when read,
    or when the LRU reaches it. One lock makes it thread-safe; ``clock`` (seconds, monotonic) is
    injectable so tests can move time.
    """

    def __init__(
        self, max_entries: int = 10_000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be ≥ 1, got {max_entries}")
        self.max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """See :meth:`CacheStore.get_many`; a hit becomes the most recently used entry."""
        now = self._clock()
        out: list[bytes | None] = []
        data = self._data
        with self._lock:
            for key in keys:
                entry = data.get(key)
                if entry is None:
                    out.append(None)
                elif entry[1] <= now:
                    del data[key]
                    out.append(None)
                else:
                    data.move_to_end(key)
                    out.append(entry[0])
        return out

    def set_many(self, items: Sequence[tuple[str, bytes]], ttl_s: float) -> None:
        """See :meth:`CacheStore.set_many`; evicts least recently used entries beyond the bound."""
        expires = self._clock() + ttl_s
        data = self._data
        with self._lock:
            for key, value in items:
                data[key] = (value, expires)
                data.move_to_end(key)
            while len(data) > self.max_entries:
                data.popitem(last=False)

    def delete_prefix(self, prefix: str) -> int:
        """See :meth:`CacheStore.delete_prefix`; one pass over every key under the lock."""
        with self._lock:
            doomed = [k for k in self._data if k.startswith(prefix)]
            for key in doomed:
                del self._data[key]
        return len(doomed)

    def __len__(self) -> int:
        """Entries held, expired ones not yet dropped included."""
        return len(self._data)

    def __repr__(self) -> str:
        return f"MemoryStore(max_entries={self.max_entries})"
