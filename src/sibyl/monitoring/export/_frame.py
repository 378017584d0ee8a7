"""Typing a chunk: a pandas DataFrame with fixed dtypes for the request and feedback columns and
inferred ones for inputs and predictions.

Dynamic columns (``in_<name>``, ``prediction``) take the narrowest type that holds every value
of the chunk: all booleans → ``boolean``; all integers → ``Int64``; all numbers → ``float64``;
strings → text; anything else → text, non-strings JSON-encoded; all NULL → an untyped NULL
column. Classifier predictions are always text (:func:`~._rows.label_text`). Readers unify
types across files (DuckDB's ``union_by_name``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from sibyl.monitoring.export._rows import (
    INPUT_PREFIX,
    PROBA_PREFIX,
    Block,
    ChunkBuilder,
    label_text,
    ordered,
)

TEXT = pd.StringDtype()
TIMESTAMP = pd.DatetimeTZDtype("us", "UTC")

# dtype of every column that is not inferred
FIXED_DTYPES: dict[str, Any] = {
    "prediction_id": TEXT,
    "request_id": TEXT,
    "row": "Int64",
    "ts": TIMESTAMP,
    "day": TEXT,
    "model": TEXT,
    "version": TEXT,
    "experiment_id": "Int64",
    "variant": TEXT,
    "routing_key": TEXT,
    "n_rows": "Int64",
    "latency_ms": "float64",
    "status": TEXT,
    "error": TEXT,
    "cached": "boolean",
    "cached_rows": "Int64",
    "fallback": TEXT,
    "label": TEXT,
    "value": "float64",
    "feedback_at": TIMESTAMP,
}
_RENAMED = {"prediction_id": "id"}


def to_frame(chunk: ChunkBuilder) -> pd.DataFrame:
    """The chunk as a typed DataFrame, columns in output order."""
    counts = np.asarray(chunk.counts, dtype=np.int64)
    repeat = np.repeat(np.arange(len(counts)), counts)
    data: dict[str, Any] = {}
    for name in FIXED_DTYPES:
        source = _RENAMED.get(name, name)
        if source in chunk.records:
            data[name] = _typed(chunk.records[source], FIXED_DTYPES[name]).take(repeat)
    n_rows = np.asarray(chunk.records["n_rows"], dtype=np.int64)
    cached_rows = np.asarray(chunk.records["cached_rows"], dtype=np.int64)
    data["row"] = _row_numbers(counts, n_rows)
    data["day"] = pd.array([chunk.day] * chunk.n, dtype=TEXT)
    data["cached"] = _cached(n_rows, cached_rows).take(repeat)
    for name, values in _columns(chunk.inputs, chunk.n, INPUT_PREFIX).items():
        data[name] = infer(values)
    data["prediction"] = _predictions(chunk)
    probabilities = _probabilities(chunk.probabilities, chunk.n)
    data.update(probabilities)
    for name, values in chunk.feedback.items():
        data[name] = _typed(values, FIXED_DTYPES[name])
    columns = ordered([c for c in data if c.startswith(INPUT_PREFIX)], probabilities)
    return pd.DataFrame({c: _values(data[c]) for c in columns})


def _values(column: Any) -> Any:
    """Positional values (``take`` keeps the repeated index; the frame needs a fresh one)."""
    return column.array if isinstance(column, pd.Series) else column


def _typed(values: list[Any], dtype: Any) -> pd.Series[Any]:
    if dtype is TIMESTAMP:
        stamps = pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("us")
        series: pd.Series[Any] = pd.Series(stamps, dtype=TIMESTAMP)
    else:
        series = pd.Series(values, dtype=dtype)
    return series


def _row_numbers(counts: np.ndarray[Any, Any], n_rows: np.ndarray[Any, Any]) -> Any:
    """0..k-1 within each record; NULL for a record without rows."""
    starts = np.cumsum(counts) - counts
    rows = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)
    empty = np.repeat(n_rows == 0, counts)
    return pd.arrays.IntegerArray(rows, empty)


def _cached(n_rows: np.ndarray[Any, Any], cached_rows: np.ndarray[Any, Any]) -> pd.Series[Any]:
    """``true`` when every row came from the cache, ``false`` when none did, NULL otherwise:
    the log keeps only the count."""
    values = pd.array(cached_rows >= n_rows, dtype="boolean")
    values[cached_rows == 0] = False
    values[(cached_rows > 0) & (cached_rows < n_rows)] = pd.NA
    return pd.Series(values)


def _predictions(chunk: ChunkBuilder) -> Any:
    values = chunk.predictions
    if not chunk.classifier:
        return infer(values)
    if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        values = [label_text(v) for v in values]
    return pd.array(values, dtype=TEXT)


def _columns(blocks: dict[tuple[str, ...], Block], n: int, prefix: str) -> dict[str, list[Any]]:
    """Blocks of rows → one full-length list per column (``None`` where a row lacks it)."""
    columns: dict[str, list[Any]] = {}
    for names, block in blocks.items():
        width = len(names)
        rows = [_fit(r, width) for r in block.rows]
        transposed = list(zip(*rows, strict=True)) if rows else [()] * width
        whole = len(block.positions) == n  # every row has this layout (the usual case)
        for name, values in zip(names, transposed, strict=True):
            column = columns.setdefault(prefix + name, [None] * n)
            if whole:
                column[:] = values
            else:
                for position, value in zip(block.positions, values, strict=True):
                    column[position] = value
    return columns


def _fit(row: Any, width: int) -> list[Any]:
    """``row`` as exactly ``width`` values (a missing or malformed row → all ``None``)."""
    if isinstance(row, list) and len(row) == width:
        return row
    items = list(row[:width]) if isinstance(row, list | tuple) else []
    return items + [None] * (width - len(items))


def _probabilities(blocks: dict[tuple[str, ...], Block], n: int) -> dict[str, Any]:
    columns: dict[str, np.ndarray[Any, Any]] = {}
    for names, block in blocks.items():
        width = len(names)
        rows = [_fit(r, width) for r in block.rows]
        try:
            matrix = np.array(rows, dtype=np.float64).reshape(len(rows), width)
        except (TypeError, ValueError):  # not numbers: the schema's dtype check names the column
            matrix = np.array(rows, dtype=object).reshape(len(rows), width)
        positions = np.asarray(block.positions, dtype=np.int64)
        for j, name in enumerate(names):
            empty = np.full(n, np.nan, dtype=matrix.dtype)
            column = columns.setdefault(PROBA_PREFIX + name, empty)
            if column.dtype != matrix.dtype:
                column = columns[PROBA_PREFIX + name] = column.astype(object)
            column[positions] = matrix[:, j]
    return dict(columns)


def infer(values: list[Any]) -> Any:
    """``values`` in the narrowest dtype that holds them all (see the module docstring)."""
    kind = pd.api.types.infer_dtype(values, skipna=True)
    try:
        if kind == "empty":
            return np.array(values, dtype=object)
        if kind == "boolean":
            return pd.array(values, dtype="boolean")
        if kind == "integer":
            return pd.array(values, dtype="Int64")
        if kind in ("floating", "mixed-integer-float", "integer-na"):
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        if kind == "string":
            return pd.array(values, dtype=TEXT)
    except (OverflowError, TypeError, ValueError):
        pass  # an integer beyond int64, a float that is not: keep it as text
    return pd.array([_text(v) for v in values], dtype=TEXT)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)
