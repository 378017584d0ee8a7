"""``SpoolingWriter``: a buffered, asynchronous writer that never blocks its callers, with a
local spool for the times the store is down.

Generic over what is buffered (``E``, cheap to make on a hot path) and what is stored (``R``)::

    submit(entry) ──deque──▶ [writer thread] render(entries) → records
                                  │ store healthy and not backed up      │ otherwise
                                  ▼                                      ▼
                             outbox ──▶ [shipper thread] write(records)  spool (fsync'd files)
                                                  ▲                       │
                                                  └── replay, oldest first ┘

* **Callers** only append to a ``deque`` (no lock, no I/O). Beyond ``max_pending`` buffered
  entries new ones are dropped and counted — which only happens when the writer thread itself
  cannot keep up, since a slow or down store never holds entries in memory.
* **The writer thread** renders entries into records (the costly part: serialisation, ids) and
  hands them to the shipper, or — when the store is down, or about ``max_pending`` records
  already wait for the shipper (a slow store) — appends them to the spool.
* **The shipper thread** is the only one that calls ``write``. A
  :class:`~sibyl.errors.BackendUnavailableError` marks the store down: the batch goes to the
  spool, and the spool's oldest segment is replayed with exponential backoff (0.5 s up to
  ``retry_max_s``) until a write succeeds; then the whole spool is replayed, in order, between
  fresh batches. Any other error is bisected down to the records that cause it, which are
  dropped and counted (a record no backend accepts must not block the others).

**Exactly once** needs ``write`` to be idempotent per record (the prediction log inserts
ignoring ids already stored): a batch whose commit succeeded but whose acknowledgement was lost
is spooled and written again harmlessly, and a crash during a replay replays the segment again.
A *crash* loses what is in memory (at most ``flush_interval_s`` of records); :meth:`close`
loses nothing: it drains the buffer and leaves what the store did not take in the spool, which
the next process adopts.

Counts (``tally`` and the optional ``counter`` with a ``result`` label): ``written`` (fresh
records stored), ``spooled``, ``replayed`` (records stored from the spool), ``dropped``
(buffer or spool full, unstorable records), ``corrupt`` (spool lines that were torn or did not
decode).
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from prometheus_client import Counter

from sibyl.errors import BackendUnavailableError
from sibyl.monitoring.predlog._spool import Spool

log = structlog.get_logger("sibyl.predlog")

E = TypeVar("E")
R = TypeVar("R")
RESULTS = ("written", "spooled", "replayed", "dropped", "corrupt")
_BACKOFF_START_S = 0.5


@dataclass(frozen=True, slots=True)
class Codec(Generic[R]):
    """How records become spool lines and back (``decode`` raises on a corrupt line)."""

    encode: Callable[[R], bytes]
    decode: Callable[[bytes], R]


@dataclass(frozen=True, slots=True)
class Periodic:
    """A task the shipper runs every ``interval_s`` while the store is up (retention)."""

    name: str
    interval_s: float
    run: Callable[[], Any]


class SpoolingWriter(Generic[E, R]):
    """See the module docstring.

    Thread safety: :meth:`submit` from any thread or task, never blocks or raises. :meth:`start`
    and :meth:`close` once each. :meth:`flush` does the threads' work in the caller's thread
    (tests, and writers that are never started).
    """

    def __init__(
        self,
        name: str,
        write: Callable[[Sequence[R]], int],
        render: Callable[[Sequence[E]], list[R]],
        *,
        spool: Spool | None = None,
        codec: Codec[R] | None = None,
        flush_interval_s: float = 1.0,
        flush_rows: int = 1000,
        max_pending: int = 100_000,
        retry_max_s: float = 30.0,
        counter: Counter | None = None,
        periodic: Sequence[Periodic] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if spool is not None and codec is None:
            raise ValueError("a spool needs a codec")
        self.name = name
        self._write = write
        self._render = render
        self._spool = spool
        self._codec = codec
        self._interval = flush_interval_s
        self.flush_rows = flush_rows
        self.max_pending = max_pending
        self._retry_max = retry_max_s
        self._clock = clock
        self.pending: deque[E] = deque()
        """The buffer :meth:`submit` appends to (hot paths may append to it directly, after
        checking ``len(pending) < max_pending``, and set ``wake`` at ``flush_rows``)."""
        self.wake = threading.Event()
        self._outbox: deque[list[R]] = deque()
        self._outbox_max = max(2, max_pending // flush_rows)  # beyond: the shipper is behind
        self._ship = threading.Event()
        self._closing = False
        self._deadline = float("inf")
        self._threads: list[threading.Thread] = []
        self.healthy = True
        """Whether the last write reached the store."""
        self._backoff = 0.0
        self._next_probe = 0.0
        self._progress: dict[str, int] = {}  # spool segment → records already replayed
        self._periodic = [p for p in periodic if p.interval_s > 0]
        self._due = [clock() + p.interval_s for p in self._periodic]
        self._counter = counter
        self.tally = dict.fromkeys(RESULTS, 0)
        if counter is not None:
            for result in RESULTS:
                counter.labels(result)

    # ---- callers ---------------------------------------------------------------------------

    def submit(self, entry: E) -> None:
        """Buffer one entry (dropped and counted when ``max_pending`` wait)."""
        pending = self.pending
        if len(pending) >= self.max_pending:
            self.count("dropped", 1)
            return
        pending.append(entry)
        if len(pending) >= self.flush_rows and not self.wake.is_set():
            self.wake.set()

    def disable_spool(self) -> None:
        """Run without a spool (it could not be opened): records the store does not take are
        dropped and counted."""
        self._spool = None

    @property
    def backlog(self) -> int:
        """Entries and records not in the store yet (memory and spool)."""
        queued = sum(len(batch) for batch in list(self._outbox))
        return len(self.pending) + queued + (self._spool.rows if self._spool else 0)

    # ---- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer and shipper threads."""
        for target, role in ((self._writer_loop, "writer"), (self._shipper_loop, "shipper")):
            thread = threading.Thread(target=target, name=f"{self.name}-{role}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self, timeout_s: float = 10.0) -> None:
        """Render everything buffered, store what the store takes within ``timeout_s`` and
        leave the rest in the spool."""
        deadline = time.monotonic() + timeout_s
        self._deadline = deadline - min(1.0, timeout_s / 2)  # the final replay stops by then
        self._closing = True
        self.wake.set()
        self._ship.set()
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        if not self._threads:
            self.flush()
        while self._outbox:  # the shipper is stuck in a write: keep its batches on disk too
            self._to_spool(self._outbox.popleft())  # (a duplicate of a late commit is ignored)
        self._threads = []

    def flush(self) -> None:
        """Render, write and replay what can be now, in the caller's thread."""
        while self.pending:
            self._drain(self.flush_rows)
            self._deliver_outbox()
        self._replay(force=True)

    # ---- writer thread ---------------------------------------------------------------------

    def _writer_loop(self) -> None:
        while not self._closing:
            self.wake.wait(self._interval)
            self.wake.clear()
            self._guard(self._drain)
        self._guard(self._drain)

    def _drain(self, most: int | None = None) -> None:
        """Render buffered entries (``most`` of them, else all) and pass the records on."""
        pending = self.pending
        left = len(pending) if most is None else most
        while pending and left > 0:
            left -= self.flush_rows
            entries = [pending.popleft() for _ in range(min(len(pending), self.flush_rows))]
            try:
                records = self._render(entries)
            except Exception:
                log.exception("log_records_unrenderable", writer=self.name, count=len(entries))
                self.count("dropped", len(entries))
                continue
            if self.healthy and len(self._outbox) < self._outbox_max:
                self._outbox.append(records)
                self._ship.set()
            else:
                self._to_spool(records)

    # ---- shipper thread --------------------------------------------------------------------

    def _shipper_loop(self) -> None:
        while not self._closing:
            self._ship.wait(self._interval)
            self._ship.clear()
            self._guard(self._shipper_step)
        for thread in self._threads[:1]:
            thread.join()  # the writer's last drain, then one last delivery
        self._guard(self._deliver_outbox)
        self._guard(lambda: self._replay(force=False))

    def _shipper_step(self) -> None:
        self._deliver_outbox()
        self._replay(force=False)
        if self.healthy:
            self._run_periodic()

    def _deliver_outbox(self) -> None:
        while self._outbox:
            batch = self._outbox.popleft()
            if self.healthy:
                self._store(batch, "written")
            else:
                self._to_spool(batch)

    def _store(self, batch: list[R], result: str) -> bool:
        """Write ``batch``; on an outage spool it (fresh) or keep it (replay) and say False."""
        try:
            self._write(batch)
        except BackendUnavailableError as exc:
            self._down(exc)
            if result == "written":
                self._to_spool(batch)
            return False
        except Exception as exc:  # a record no backend takes: find it, keep the others
            return self._bisect(batch, result, exc)
        self._up()
        self.count(result, len(batch))
        return True

    def _bisect(self, batch: list[R], result: str, exc: Exception) -> bool:
        if len(batch) == 1:
            log.warning("log_record_refused", writer=self.name, error=repr(exc))
            self.count("dropped", 1)
            return True
        half = len(batch) // 2
        if self._store(batch[:half], result):
            return self._store(batch[half:], result)
        if result == "written":  # the store went down meanwhile: the rest waits in the spool
            self._to_spool(batch[half:])
        return False

    def _replay(self, *, force: bool) -> None:
        """Replay spool segments, oldest first, while the store takes them (when it is down,
        only once the backoff has passed, unless ``force``); returns early for fresh batches."""
        spool = self._spool
        if spool is None or not spool.bytes:
            return
        if not self.healthy and not force and self._clock() < self._next_probe:
            return
        while (segment := spool.oldest()) is not None:
            if not self._replay_segment(spool, segment) or (self._outbox and not self._closing):
                return

    def _replay_segment(self, spool: Spool, segment: Any) -> bool:
        assert self._codec is not None
        data = spool.read(segment)
        records, corrupt = [], data.torn
        for line in data.lines:
            try:
                records.append(self._codec.decode(line))
            except Exception:
                corrupt += 1
        key = str(segment.path)
        done = self._progress.get(key, 0)
        for start in range(done, len(records), self.flush_rows):
            if time.monotonic() > self._deadline or not self._store(
                records[start : start + self.flush_rows], "replayed"
            ):
                self._progress[key] = start
                return False
        self._progress.pop(key, None)
        if corrupt:
            log.warning("spool_lines_corrupt", writer=self.name, segment=key, count=corrupt)
            self.count("corrupt", corrupt)
        spool.remove(segment)
        return True

    def _run_periodic(self) -> None:
        now = self._clock()
        for i, task in enumerate(self._periodic):
            if now >= self._due[i]:
                self._due[i] = now + task.interval_s
                try:
                    task.run()
                except BackendUnavailableError as exc:
                    self._down(exc)
                except Exception:
                    log.exception("log_periodic_task_failed", writer=self.name, task=task.name)

    # ---- shared ----------------------------------------------------------------------------

    def _to_spool(self, records: list[R]) -> None:
        if self._spool is None or self._codec is None:
            self.count("dropped", len(records))
            return
        try:
            lines = [self._codec.encode(r) for r in records]
            stored = self._spool.append(lines)
        except Exception:
            log.exception("spool_write_failed", writer=self.name, count=len(records))
            stored = False
        if stored:
            self.count("spooled", len(records))
        else:
            log.warning("spool_full_records_dropped", writer=self.name, count=len(records))
            self.count("dropped", len(records))

    def _down(self, exc: BackendUnavailableError) -> None:
        self._backoff = min(self._retry_max, max(_BACKOFF_START_S, self._backoff * 2))
        self._next_probe = self._clock() + self._backoff * random.uniform(0.8, 1.2)
        if self.healthy:
            log.warning("log_store_unavailable", writer=self.name, error=exc.message)
        self.healthy = False

    def _up(self) -> None:
        if not self.healthy:
            log.info("log_store_available", writer=self.name)
        self.healthy = True
        self._backoff = 0.0

    def count(self, result: str, n: int) -> None:
        """Add ``n`` to the ``result`` count (and the counter)."""
        self.tally[result] += n
        if self._counter is not None:
            self._counter.labels(result).inc(n)

    def _guard(self, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception:  # a bug here must not kill the thread
            log.exception("log_writer_step_failed", writer=self.name)
