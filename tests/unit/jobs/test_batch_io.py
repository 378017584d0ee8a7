"""Splitting inputs into chunks and reading them back: every row exactly once, in order, with
quoted newlines, CRLF, blank lines, a missing final newline and row groups in the way."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow.fs import LocalFileSystem

from sibyl.errors import InvalidInputError
from sibyl.jobs.batch import _files, _plan
from sibyl.jobs.batch._read import read_chunk

FS = LocalFileSystem()


def _read_all(fmt: str, specs: list[dict], columns: list[str], types: dict[str, str],
              header: bytes = b"", read_rows: int = 2) -> tuple[pd.DataFrame, list[int]]:
    frames, counts = [], []
    for spec in specs:
        tables = list(read_chunk(FS, fmt, spec, columns, types, read_rows, header))
        assert all(t.num_rows <= read_rows for t in tables)
        counts.append(sum(t.num_rows for t in tables))
        frames.extend(t.to_pandas() for t in tables)
    return pd.concat(frames, ignore_index=True), counts


def test_csv_chunks_cover_every_record_once(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    lines = ['a,b,note', '1,2,"plain"', '', '3,4,"two\nlines"', '5,6,"with ""quotes"", comma"',
             '7,8,x', '', '9,10,"a\r\nb"', '11,12,last']
    path.write_bytes("\r\n".join(lines).encode())  # CRLF, no final newline
    specs, header = _plan.text_specs(FS, str(path), path.stat().st_size, is_csv=True,
                                     chunk_rows=2)
    assert header == b"a,b,note\r\n"
    assert [s["rows"] for s in specs] == [2, 2, 2]
    types = {"a": "double", "b": "double", "note": "string"}
    got, counts = _read_all("csv", specs, ["a", "b", "note"], types, header)
    assert counts == [2, 2, 2]
    assert got["a"].tolist() == [1, 3, 5, 7, 9, 11]
    assert got["note"].tolist() == ["plain", "two\nlines", 'with "quotes", comma', "x",
                                    "a\r\nb", "last"]
    assert _plan.csv_columns(header) == ["a", "b", "note"]


def test_csv_split_across_scan_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_plan, "BLOCK", 7)  # record ends and quotes straddle block edges
    path = tmp_path / "in.csv"
    rows = [f'{i},"q\n{i}"' for i in range(25)]
    path.write_text("id,text\n" + "\n".join(rows) + "\n\n")
    specs, header = _plan.text_specs(FS, str(path), path.stat().st_size, is_csv=True,
                                     chunk_rows=4)
    assert sum(s["rows"] for s in specs) == 25
    got, counts = _read_all("csv", specs, ["id", "text"], {"id": "double", "text": "string"},
                            header, read_rows=3)
    assert counts == [s["rows"] for s in specs]
    assert got["id"].tolist() == list(range(25))
    assert got["text"].tolist() == [f"q\n{i}" for i in range(25)]


def test_jsonl_chunks(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    recs = [{"x": i, "y": i * 0.5, "id": f"u{i}"} for i in range(11)]
    text = "\n".join(json.dumps(r) for r in recs[:5]) + "\n\n" + "\n".join(
        json.dumps(r) for r in recs[5:])
    path.write_text(text)
    specs, _ = _plan.text_specs(FS, str(path), path.stat().st_size, is_csv=False, chunk_rows=4)
    assert [s["rows"] for s in specs] == [4, 4, 3]
    got, counts = _read_all("jsonl", specs, ["x", "y", "id"],
                            {"x": "double", "y": "double", "id": "string"})
    assert counts == [4, 4, 3]
    assert got["id"].tolist() == [f"u{i}" for i in range(11)]
    assert got["x"].tolist() == [float(i) for i in range(11)]


def test_parquet_ranges_across_row_groups(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    table = pa.table({"x": list(range(23)), "y": [f"r{i}" for i in range(23)]})
    pq.write_table(table, path, row_group_size=7)
    specs = _plan.parquet_specs(FS, str(path), 5)
    assert [(s["first"], s["rows"]) for s in specs] == [(0, 5), (5, 5), (10, 5), (15, 5),
                                                          (20, 3)]
    got, counts = _read_all("parquet", specs, ["x"], {}, read_rows=3)
    assert counts == [5, 5, 5, 5, 3]
    assert got["x"].tolist() == list(range(23))


def test_inputs_and_outputs_are_checked(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b.csv").write_text("a\n1\n")
    (tmp_path / "d" / "a.csv").write_text("a\n2\n")
    (tmp_path / "d" / "_skip.csv").write_text("a\n3\n")
    fmt, files = _files.resolve_input(_files.locate(str(tmp_path / "d"), None, "input"), None)
    assert fmt == "csv" and [Path(p).name for p, _ in files] == ["a.csv", "b.csv"]
    with pytest.raises(InvalidInputError) as err:
        _files.input_files(_files.locate(str(tmp_path / "nope.csv"), None, "input"), None)
    assert err.value.field == "input"
    with pytest.raises(InvalidInputError) as err:
        _files.locate("gs://bucket/x", None, "input")
    assert err.value.field == "input"
    with pytest.raises(InvalidInputError) as err:
        _files.format_of("data.txt", None)
    assert err.value.field == "input_format"
    with pytest.raises(InvalidInputError) as err:
        _files.check_output(_files.locate(str(tmp_path / "d"), None, "output"), overwrite=False)
    assert err.value.field == "output"
    _files.check_output(_files.locate(str(tmp_path / "d"), None, "output"), overwrite=True)
