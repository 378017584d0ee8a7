"""``RegistryWatcher``: notice alias changes made by anyone, by polling one snapshot call."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Protocol

import structlog

from sibyl.errors import InvalidInputError
from sibyl.registry._types import AliasChange

log = structlog.get_logger(__name__)

Snapshot = Mapping[str, Mapping[str, str]]
"""``{model: {alias: version}}`` as returned by :meth:`ModelRegistry.aliases`."""


class AliasSource(Protocol):
    """What the watcher needs from a registry: one call returning every model's aliases."""

    def aliases(self) -> dict[str, dict[str, str]]: ...


def diff_aliases(old: Snapshot, new: Snapshot) -> list[AliasChange]:
    """Aliases that appeared, moved or disappeared between two snapshots (pure; sorted by
    model then alias). A model that vanished reports each of its aliases as disappeared."""
    changes: list[AliasChange] = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name, {}), new.get(name, {})
        for alias in sorted(before.keys() | after.keys()):
            was, now = before.get(alias), after.get(alias)
            if was != now:
                changes.append(AliasChange(name, alias, was, now))
    return changes


class RegistryWatcher:
    """Polls ``registry.aliases()`` every ``interval_s`` in a daemon thread and calls
    ``on_change`` once per alias that appeared, moved or disappeared since the last poll.

    Sees changes made by anyone (another sibyl, a plain ``MlflowClient``, the MLflow UI), at
    most ``interval_s`` late. :meth:`start` takes the first snapshot, which emits nothing.
    ``on_change`` runs on the watcher thread and must not block for long; its exceptions and
    backend errors are logged and polling goes on (a failed poll keeps the last snapshot, so
    nothing is lost, only delayed). :meth:`poll_once` is the same step, synchronously.
    """

    def __init__(
        self, registry: AliasSource, interval_s: float, on_change: Callable[[AliasChange], None]
    ) -> None:
        if interval_s <= 0:
            raise InvalidInputError(
                f"Registry watch interval must be > 0 s, got {interval_s}; to disable "
                "watching, do not start a watcher",
                field="interval_s",
            )
        self.registry = registry
        self.interval_s = interval_s
        self.on_change = on_change
        self._snapshot: dict[str, dict[str, str]] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one poll at a time (thread vs. poll_once)

    @property
    def running(self) -> bool:
        """Whether the polling thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Take the baseline snapshot (errors are logged, the thread retries) and start
        polling. Calling it on a running watcher does nothing."""
        if self.running:
            return
        self._stop = threading.Event()  # fresh: a slow old thread keeps its own, set, event
        self._baseline()
        self._thread = threading.Thread(
            target=self._run, args=(self._stop,), name="sibyl-registry-watcher", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop polling and wait up to ``timeout_s`` for the thread (it wakes at once unless
        a backend call or ``on_change`` is in progress)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def poll_once(self) -> list[AliasChange]:
        """Read a snapshot, call ``on_change`` for each change since the last one, return them.

        The first snapshot is the baseline and returns ``[]``. Backend errors propagate (the
        thread catches and logs them); ``on_change`` errors are logged, not raised.
        """
        with self._lock:
            current = self.registry.aliases()
            previous, self._snapshot = self._snapshot, current
        if previous is None:
            return []
        changes = diff_aliases(previous, current)
        for change in changes:
            self._notify(change)
        return changes

    def _baseline(self) -> None:
        try:
            self.poll_once()
        except Exception as exc:
            log.warning("registry_watch_failed", error=repr(exc), interval_s=self.interval_s)

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval_s):
            try:
                self.poll_once()
            except Exception as exc:
                log.warning("registry_watch_failed", error=repr(exc), interval_s=self.interval_s)

    def _notify(self, change: AliasChange) -> None:
        try:
            self.on_change(change)
        except Exception as exc:
            log.error(
                "registry_watch_callback_failed",
                model=change.name,
                alias=change.alias,
                new_version=change.new_version,
                error=repr(exc),
            )
