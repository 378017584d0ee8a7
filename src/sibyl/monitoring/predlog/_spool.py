"""The spool: records that could not reach the store yet, in append-only local files.

Layout: ``<root>/<pid>-<random>/<sequence>.jsonl`` — one directory per process, holding an
exclusive ``flock`` on its ``LOCK`` file while the process lives, and *segments* of encoded
records, one per line. The active segment is appended to (one ``write`` + ``fsync`` per batch);
when it passes ``segment_bytes`` — or when the reader wants its rows — it is *sealed* and a new
one starts. Sealed segments are read oldest first and removed once their rows are stored.

Crash safety: a batch is on disk when :meth:`Spool.append` returns. A crash in the middle of an
append leaves a *torn* last line (no newline) that :meth:`Spool.read` skips and counts; a
process never appends to a segment it did not create, so nothing is ever glued onto a torn line.
When :meth:`Spool.open` finds the directory of a process that is gone (its lock is free), it
adopts that directory's segments (renamed into its own, in order) so they are replayed too.

Thread safety: every method may be called from any thread (one lock; an append holds it for its
write and fsync).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger("sibyl.predlog")

LOCK = "LOCK"
SUFFIX = ".jsonl"


@dataclass(frozen=True, slots=True)
class Segment:
    """One sealed spool file, how many records and bytes it holds."""

    path: Path
    rows: int
    size: int


@dataclass(frozen=True, slots=True)
class SegmentData:
    """A segment's complete lines and the torn last line (if any) that was skipped."""

    lines: list[bytes]
    torn: int


class Spool:
    """Append-only segment files of one process (see the module docstring).

    ``max_bytes`` bounds the disk used: :meth:`append` refuses a batch that would pass it.
    """

    def __init__(self, root: Path, *, max_bytes: int, segment_bytes: int = 4 << 20) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.dir = root / f"{os.getpid()}-{secrets.token_hex(4)}"
        self._lock = threading.Lock()
        self._sealed: list[Segment] = []
        self._seq = 0
        self._fd: int | None = None
        self._active: Path | None = None
        self._active_bytes = 0
        self._active_rows = 0
        self._bytes = 0
        self._lock_fd: int | None = None

    # ---- life cycle ------------------------------------------------------------------------

    def open(self) -> None:
        """Create this process's directory, lock it, adopt the segments of dead processes."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.dir / LOCK, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.adopt()

    def close(self) -> None:
        """Close the active segment; remove this process's directory when nothing is left in it
        (else the next process adopts it)."""
        with self._lock:
            self._seal()
            empty = not self._sealed
        if empty:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def adopt(self) -> int:
        """Move the segments of dead processes' directories into this one (oldest first);
        returns how many segments were adopted."""
        if not self.root.is_dir():
            return 0
        adopted = 0
        for other in sorted(p for p in self.root.iterdir() if p.is_dir() and p != self.dir):
            adopted += self._adopt(other)
        return adopted

    def _adopt(self, other: Path) -> int:
        try:
            fd = os.open(other / LOCK, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError:  # removed meanwhile, or not ours to touch
            return 0
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # its process is alive
            files = sorted(other.glob(f"*{SUFFIX}"))
            with self._lock:
                for path in files:
                    self._adopt_file(path)
            shutil.rmtree(other, ignore_errors=True)
            if files:
                log.info("prediction_spool_adopted", directory=str(other), segments=len(files))
            return len(files)
        finally:
            os.close(fd)

    def _adopt_file(self, path: Path) -> None:
        data = path.read_bytes()
        if not data:
            path.unlink(missing_ok=True)
            return
        target = self._next_path()
        path.rename(target)
        self._sealed.append(Segment(target, data.count(b"\n"), len(data)))
        self._bytes += len(data)

    # ---- writing ---------------------------------------------------------------------------

    def append(self, lines: Sequence[bytes]) -> bool:
        """Append one line per record and fsync; ``False`` (nothing written) when the spool is
        full. Raises ``OSError`` when the disk refuses (the segment is then cut back to its size
        before the call and sealed)."""
        if not lines:
            return True
        data = b"\n".join(lines) + b"\n"
        with self._lock:
            if self._bytes + len(data) > self.max_bytes:
                return False
            fd = self._fd if self._fd is not None else self._start()
            before = self._active_bytes
            try:
                _write_all(fd, data)
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, before)
                self._seal()
                raise
            self._active_bytes += len(data)
            self._active_rows += len(lines)
            self._bytes += len(data)
            if self._active_bytes >= self.segment_bytes:
                self._seal()
        return True

    def _start(self) -> int:
        self._active = self._next_path()
        self._fd = os.open(self._active, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
        self._active_bytes = self._active_rows = 0
        return self._fd

    def _next_path(self) -> Path:
        self._seq += 1
        return self.dir / f"{self._seq:012d}{SUFFIX}"

    def _seal(self) -> None:
        if self._fd is None or self._active is None:
            return
        os.close(self._fd)
        if self._active_bytes:
            self._sealed.append(Segment(self._active, self._active_rows, self._active_bytes))
        else:
            self._active.unlink(missing_ok=True)
        self._fd = self._active = None
        self._active_bytes = self._active_rows = 0

    # ---- reading ---------------------------------------------------------------------------

    def oldest(self) -> Segment | None:
        """The oldest segment to replay, sealing the active one when nothing else waits."""
        with self._lock:
            if not self._sealed:
                self._seal()
            return self._sealed[0] if self._sealed else None

    @staticmethod
    def read(segment: Segment) -> SegmentData:
        """The segment's complete lines; a last line without its newline is torn (skipped)."""
        data = segment.path.read_bytes()
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" after a final newline, else a torn line
        return SegmentData([line for line in lines if line], 1 if tail else 0)

    def remove(self, segment: Segment) -> None:
        """Forget a replayed segment and delete its file."""
        with self._lock:
            if segment in self._sealed:
                self._sealed.remove(segment)
                self._bytes -= segment.size
                segment.path.unlink(missing_ok=True)

    # ---- state -----------------------------------------------------------------------------

    @property
    def bytes(self) -> int:
        """Bytes on disk waiting to be replayed."""
        return self._bytes

    @property
    def rows(self) -> int:
        """Records waiting to be replayed."""
        with self._lock:
            return self._active_rows + sum(s.rows for s in self._sealed)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
