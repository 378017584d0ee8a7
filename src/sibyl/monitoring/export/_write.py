"""Writing hive-partitioned Parquet: ``<out>/model=<name>/day=<YYYY-MM-DD>/part-<n>.parquet``.

A partition is written whole into a staging directory beside ``out`` (each file as ``.tmp`` then
renamed) and swapped in only when complete: readers of ``out`` never see a half-written
partition, a re-export replaces the day's partition (no duplicates), and a partition whose
export fails leaves the previous one untouched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# stored in the directory names (hive partitioning), not in the files
PARTITION_COLUMNS = ("model", "day")


def partition_dir(model: str, day: str) -> Path:
    """The partition's path relative to the export root (the model name URI-escaped, as
    DuckDB and pyarrow decode it)."""
    return Path(f"model={quote(model, safe='')}") / f"day={day}"


class Staging:
    """A scratch directory on the same filesystem as ``out`` (so renames are atomic); remove it
    with :meth:`close`."""

    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.root = Path(tempfile.mkdtemp(prefix=f".{out.name}-export-", dir=out.parent))

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class PartitionWriter:
    """The files of one (model, day) partition, swapped in by :meth:`commit`."""

    def __init__(self, staging: Staging, model: str, day: str) -> None:
        self.model, self.day = model, day
        self._staging = staging
        self._relative = partition_dir(model, day)
        self._dir = staging.root / uuid.uuid4().hex
        self._dir.mkdir()
        self.files = 0
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        """Stage ``frame`` (already validated) as the next ``part-<n>.parquet``."""
        table = pa.Table.from_pandas(
            frame.drop(columns=list(PARTITION_COLUMNS)), preserve_index=False
        )
        final = self._dir / f"part-{self.files}.parquet"
        tmp = final.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, final)
        self.files += 1
        self.rows += len(frame)

    def commit(self) -> Path:
        """Replace ``out/<partition>`` with the staged files; returns the partition's path."""
        target = self._staging.out / self._relative
        target.parent.mkdir(parents=True, exist_ok=True)
        old = self._staging.root / f"old-{uuid.uuid4().hex}"
        if target.exists():
            os.replace(target, old)
        os.replace(self._dir, target)
        shutil.rmtree(old, ignore_errors=True)
        return target

    def abort(self) -> None:
        """Drop the staged files; ``out`` keeps what it had."""
        shutil.rmtree(self._dir, ignore_errors=True)
