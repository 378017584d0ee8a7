"""Splitting an input into chunks of about ``chunk_rows`` rows, reading as little as possible.

* **Parquet**: row counts come from the footers (no data read); a chunk is a row range of one
  file, read through the row groups it overlaps.
* **CSV / JSONL**: one streaming pass over the bytes (numpy, 8 MiB at a time) finds the record
  ends — newlines outside double quotes for CSV (RFC 4180: a quoted field may hold newlines,
  ``""`` escapes a quote), every newline for JSONL — skipping empty lines as the readers do; a
  chunk is a byte range of whole records (CSV chunks are read with the file's header line).

A spec records the chunk's file, its first row's index in the whole input (``start``) and its
row count, which the chunk checks after reading: an input changed while the job ran fails the
job instead of scoring rows twice or not at all.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sibyl.errors import InvalidInputError

if TYPE_CHECKING:
    from pyarrow.fs import FileSystem

BLOCK = 8 << 20
NL, CR, QUOTE = 10, 13, 34


def parquet_specs(fs: FileSystem, path: str, chunk_rows: int) -> list[dict[str, Any]]:
    """Row ranges of one Parquet file."""
    import pyarrow.parquet as pq

    with fs.open_input_file(path) as f:
        n = pq.ParquetFile(f).metadata.num_rows
    return [
        {"file": path, "first": first, "rows": min(chunk_rows, n - first)}
        for first in range(0, n, chunk_rows)
    ]


@dataclass
class _Scan:
    """State of one pass over a text file."""

    csv: bool
    chunk_rows: int
    pos: int = 0
    parity: int = 0
    prev_nl: int = -1
    last_byte: int = NL
    header_end: int | None = None
    data_rows: int = 0
    bounds: list[int] = field(default_factory=list)
    """Byte offsets where a chunk ends (after every ``chunk_rows`` records)."""

    def feed(self, data: bytes) -> None:
        arr = np.frombuffer(data, np.uint8)
        nls = self._newlines(arr) + self.pos
        if nls.size:
            ends = nls[~self._empty(arr, nls)]
            if self.csv and self.header_end is None and ends.size:
                self.header_end = int(ends[0]) + 1
                ends = ends[1:]
            counts = self.data_rows + np.arange(1, ends.size + 1)
            self.bounds.extend(int(e) + 1 for e in ends[counts % self.chunk_rows == 0])
            self.data_rows += int(ends.size)
            self.prev_nl = int(nls[-1])
        self.last_byte = int(arr[-1])
        self.pos += len(data)

    def _newlines(self, arr: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        mask = arr == NL
        if self.csv:
            quotes = arr == QUOTE
            if self.parity or quotes.any():
                inside = (np.cumsum(quotes, dtype=np.int64) + self.parity) & 1
                mask &= inside == 0
                self.parity = int((self.parity + int(quotes.sum())) & 1)
        return np.flatnonzero(mask)

    def _empty(self, arr: np.ndarray[Any, Any], nls: np.ndarray[Any, Any]) -> Any:
        starts = np.empty_like(nls)
        starts[0] = self.prev_nl + 1
        starts[1:] = nls[:-1] + 1
        lengths = nls - starts
        before = nls - self.pos - 1
        prev = np.where(before >= 0, arr[np.maximum(before, 0)], self.last_byte)
        return (lengths == 0) | ((lengths == 1) & (prev == CR))

    def finish(self, tail: bytes) -> None:
        """Count a last record without a final newline (``tail``: bytes after the last one)."""
        if tail.strip():
            if self.csv and self.header_end is None:
                self.header_end = self.pos
                return
            self.data_rows += 1


def text_specs(
    fs: FileSystem, path: str, size: int, *, is_csv: bool, chunk_rows: int
) -> tuple[list[dict[str, Any]], bytes]:
    """Byte ranges of one CSV / JSONL file and (CSV) its header line."""
    scan = _Scan(is_csv, chunk_rows)
    last, last_at = b"", 0
    with fs.open_input_stream(path) as f:
        while data := f.read(BLOCK):
            last, last_at = data, scan.pos
            scan.feed(data)
    scan.finish(last[max(scan.prev_nl + 1 - last_at, 0) :])
    header = b""
    start = 0
    if is_csv:
        if scan.header_end is None:
            raise InvalidInputError(f"'input': {path} is empty (no header line)", field="input")
        start = scan.header_end
        with fs.open_input_file(path) as f:
            header = f.read(start)
    ends = [b for b in scan.bounds if b < size] + [size]
    specs = []
    rows_left = scan.data_rows
    for end in ends:
        rows = min(chunk_rows, rows_left)
        if rows <= 0:
            break
        specs.append({"file": path, "offset": start, "length": end - start, "rows": rows})
        rows_left -= rows
        start = end
    return specs, header


def csv_columns(header: bytes) -> list[str]:
    """Column names of a CSV header line."""
    text = header.decode("utf-8-sig").rstrip("\r\n")
    return next(csv.reader(io.StringIO(text)), [])
