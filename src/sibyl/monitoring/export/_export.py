"""``export_log``: the prediction log joined with feedback, to partitioned Parquet."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import groupby
from pathlib import Path
from typing import Any

from sibyl.monitoring.export._frame import to_frame
from sibyl.monitoring.export._read import BATCH_ROWS, Batch, LogFilter, engine_of, log_batches
from sibyl.monitoring.export._rows import ChunkBuilder, FeedbackIndex
from sibyl.monitoring.export._schema import validate
from sibyl.monitoring.export._write import PartitionWriter, Staging

CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class Partition:
    """One written partition."""

    model: str
    day: str
    rows: int
    files: int
    path: Path


@dataclass
class ExportReport:
    """What an export wrote: ``log_rows`` records read, ``rows`` rows written."""

    out: Path
    log_rows: int = 0
    rows: int = 0
    partitions: list[Partition] = field(default_factory=list)

    @property
    def files(self) -> int:
        return sum(p.files for p in self.partitions)


Progress = Callable[[ExportReport], None]


def export_log(
    store: Any,
    out: Path,
    *,
    model: str | None = None,
    since: date | None = None,
    until: date | None = None,
    chunk_rows: int = CHUNK_ROWS,
    batch_rows: int = BATCH_ROWS,
    on_progress: Progress | None = None,
) -> ExportReport:
    """Export the log records of ``model`` (every model when ``None``) from whole UTC days
    ``since``..``until`` (inclusive; open when ``None``) to ``out``.

    ``store`` is a SQL store (``get_store(url)``) or a SQLAlchemy engine. Each exported (model,
    day) partition replaces the one already under ``out``; days without log rows are left
    alone (an archive outlives the log's retention). Files hold at most ``chunk_rows`` rows;
    ``on_progress`` is called after each batch of ``batch_rows`` log records.

    Raises :class:`ExportValidationError` when a chunk breaks the export schema (partitions
    completed before it stay written), ``InvalidInputError`` for bad arguments,
    ``BackendUnavailableError`` when the database cannot be read.
    """
    where = LogFilter(model, since, until)
    engine = engine_of(store)
    run = _Run(Staging(Path(out)), chunk_rows)
    try:
        for batch, feedback in log_batches(engine, where, batch_rows):
            run.add(batch, feedback)
            run.report.log_rows += batch.size
            if on_progress is not None:
                on_progress(run.report)
        run.finish()
    except BaseException:
        run.abort()
        raise
    finally:
        run.staging.close()
    return run.report


class _Run:
    """One export in progress: the open partition and its pending chunk."""

    def __init__(self, staging: Staging, chunk_rows: int) -> None:
        self.staging = staging
        self.chunk_rows = max(1, chunk_rows)
        self.report = ExportReport(out=staging.out)
        self.writer: PartitionWriter | None = None
        self.chunk: ChunkBuilder | None = None

    def add(self, batch: Batch, feedback: FeedbackIndex) -> None:
        """Add a batch of log records (in model, ts order) to their partitions."""
        models, n_rows = batch.columns["model"], batch.columns["n_rows"]
        days = [ts.date() for ts in batch.columns["ts"]]  # UTC: the store returns UTC times
        start = 0
        for (model, day), group in groupby(zip(models, days, strict=True)):
            stop = start + sum(1 for _ in group)
            if self.writer is None or (self.writer.model, self.writer.day) != (model, str(day)):
                self.finish()
                self.writer = PartitionWriter(self.staging, model, day.isoformat())
                self.chunk = ChunkBuilder(day.isoformat())
            self._fill(batch.columns, n_rows, start, stop, feedback)
            start = stop

    def _fill(
        self,
        columns: Mapping[str, Sequence[Any]],
        n_rows: Sequence[int],
        start: int,
        stop: int,
        feedback: FeedbackIndex,
    ) -> None:
        """Add records ``start:stop`` of the open partition, flushing whenever the chunk is
        full; a record is never split, so only a record larger than ``chunk_rows`` makes a
        larger file."""
        while start < stop:
            assert self.chunk is not None
            take = _fitting(n_rows, start, stop, self.chunk_rows - self.chunk.n)
            if take == 0 and self.chunk.n > 0:
                self._flush()
                continue
            take = max(take, 1)
            self.chunk.add(columns, start, start + take, feedback)
            start += take
            if self.chunk.n >= self.chunk_rows:
                self._flush()

    def _flush(self) -> None:
        if self.writer is None or self.chunk is None or self.chunk.n == 0:
            return
        frame = to_frame(self.chunk)
        self.chunk = ChunkBuilder(self.chunk.day)
        validate(frame, f"model '{self.writer.model}' day {self.writer.day}")
        self.writer.write(frame)
        self.report.rows += len(frame)

    def finish(self) -> None:
        """Write the pending chunk and swap the open partition in."""
        if self.writer is None:
            return
        self._flush()
        writer, self.writer, self.chunk = self.writer, None, None
        path = writer.commit()
        self.report.partitions.append(
            Partition(writer.model, writer.day, writer.rows, writer.files, path)
        )

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


def _fitting(n_rows: Sequence[int], start: int, stop: int, room: int) -> int:
    """How many records from ``start`` fit in ``room`` output rows."""
    used = 0
    for i in range(start, stop):
        used += max(n_rows[i], 1)
        if used > room:
            return i - start
    return stop - start
