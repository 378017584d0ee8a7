"""Reading one chunk as a stream of small Arrow tables (at most ``read_rows`` rows each), so a
chunk's memory stays bounded whatever its size.

Column types are fixed by the plan (the model's feature columns as the model's kinds, CSV
passthrough columns as text, the others as inferred from the start of the input), so every
chunk yields the same schema and the part files form one dataset.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa
    from pyarrow.fs import FileSystem

TEXT_BLOCK = 4 << 20


class _RangeStream(io.RawIOBase):
    """``prefix`` bytes, then ``length`` bytes of ``f`` from ``offset`` (a CSV chunk with its
    header line), read lazily."""

    def __init__(self, f: Any, prefix: bytes, offset: int, length: int) -> None:
        self._f = f
        self._prefix = prefix
        self._left = length
        f.seek(offset)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf)
        if self._prefix:
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        if self._left <= 0:
            return 0
        data = self._f.read(min(len(view), self._left))
        self._left -= len(data)
        view[: len(data)] = data
        return len(data)


def arrow_types(types: Mapping[str, str]) -> dict[str, pa.DataType]:
    """Arrow types from the plan's type names (``double``, ``string``, ``int64``, …)."""
    import pyarrow as pa

    return {name: pa.type_for_alias(t) for name, t in types.items()}


def read_chunk(
    fs: FileSystem,
    fmt: str,
    spec: Mapping[str, Any],
    columns: Sequence[str],
    types: Mapping[str, str],
    read_rows: int,
    header: bytes = b"",
) -> Iterator[pa.Table]:
    """The chunk's rows, ``columns`` only, as tables of at most ``read_rows`` rows."""
    if fmt == "parquet":
        tables = _parquet(fs, spec, columns, read_rows)
    elif fmt == "csv":
        tables = _csv(fs, spec, columns, types, header)
    else:
        tables = _jsonl(fs, spec, columns, types)
    for table in tables:
        for start in range(0, table.num_rows, read_rows):
            yield table.slice(start, read_rows)


def _parquet(
    fs: FileSystem, spec: Mapping[str, Any], columns: Sequence[str], read_rows: int
) -> Iterator[pa.Table]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    first, rows = int(spec["first"]), int(spec["rows"])
    with fs.open_input_file(spec["file"]) as f:
        pf = pq.ParquetFile(f)
        groups: list[int] = []
        skip, at = 0, 0
        for i in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(i).num_rows
            if at + n > first and at < first + rows:
                if not groups:
                    skip = first - at
                groups.append(i)
            at += n
        left = rows
        for batch in pf.iter_batches(
            batch_size=read_rows, row_groups=groups, columns=list(columns)
        ):
            table = pa.Table.from_batches([batch])
            if skip:
                cut = min(skip, table.num_rows)
                table, skip = table.slice(cut), skip - cut
            if table.num_rows and left > 0:
                yield table.slice(0, left)
                left -= min(left, table.num_rows)
            if left <= 0:
                return


def _csv(
    fs: FileSystem,
    spec: Mapping[str, Any],
    columns: Sequence[str],
    types: Mapping[str, str],
    header: bytes,
) -> Iterator[pa.Table]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with fs.open_input_file(spec["file"]) as f:
        stream = _RangeStream(f, header, int(spec["offset"]), int(spec["length"]))
        reader = pacsv.open_csv(
            io.BufferedReader(stream, TEXT_BLOCK),
            read_options=pacsv.ReadOptions(block_size=TEXT_BLOCK, use_threads=False),
            convert_options=pacsv.ConvertOptions(
                column_types=arrow_types(types), include_columns=list(columns)
            ),
        )
        for batch in reader:
            yield pa.Table.from_batches([batch])


def _jsonl(
    fs: FileSystem, spec: Mapping[str, Any], columns: Sequence[str], types: Mapping[str, str]
) -> Iterator[pa.Table]:
    import pyarrow as pa
    import pyarrow.json as pajson

    schema = pa.schema(list(arrow_types({c: types[c] for c in columns if c in types}).items()))
    options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    with fs.open_input_file(spec["file"]) as f:
        f.seek(int(spec["offset"]))
        left, carry = int(spec["length"]), b""
        while left > 0 or carry:
            data = f.read(min(TEXT_BLOCK, left)) if left > 0 else b""
            left -= len(data)
            block = carry + data
            cut = block.rfind(b"\n") + 1 if left > 0 else len(block)
            block, carry = block[:cut], block[cut:]
            if block.strip():
                table = pajson.read_json(io.BytesIO(block), parse_options=options)
                yield table.select(list(columns))
