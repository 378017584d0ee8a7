"""Output rows of batch scoring: predictions beside provenance, streamed into a part file.

Columns, in order: ``row_index`` (the row's position in the whole input, 0-based), the
passthrough columns, ``prediction``, one ``proba_<class>`` per class for classifiers, then the
provenance: ``model``, ``model_version``, ``job_id``, ``scored_at`` (UTC).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from sibyl.runtime.types import Prediction

if TYPE_CHECKING:
    import pyarrow as pa

PROVENANCE = ("model", "model_version", "job_id", "scored_at")
RESERVED = frozenset({"row_index", "prediction", *PROVENANCE})


def _json_column(values: Any) -> pa.Array:
    import pyarrow as pa

    dump = orjson.dumps
    opts = orjson.OPT_SERIALIZE_NUMPY
    return pa.array([dump(v, default=str, option=opts).decode() for v in values], pa.string())


def prediction_column(values: np.ndarray[Any, Any], fmt: str) -> pa.Array:
    """The ``prediction`` column: numbers and strings as they are, anything else as JSON
    (lists stay lists in Parquet)."""
    import pyarrow as pa

    if values.ndim == 1 and values.dtype.kind in "biuf":
        return pa.array(values)
    if values.ndim == 1 and values.dtype.kind in "US":
        return pa.array(values.astype(str), pa.string())
    if values.ndim == 1 and all(isinstance(v, str) for v in values):
        return pa.array(list(values), pa.string())
    if values.ndim == 2 and values.dtype.kind in "biuf" and fmt == "parquet":
        return pa.array(list(values))
    return _json_column(values)


def output_table(
    inputs: pa.Table,
    passthrough: Sequence[str],
    start: int,
    pred: Prediction,
    provenance: Mapping[str, str],
    scored_at: datetime,
    fmt: str,
) -> pa.Table:
    """The output rows for ``inputs`` (whose first row is input row ``start``)."""
    import pyarrow as pa

    n = inputs.num_rows
    cols: dict[str, pa.Array | pa.ChunkedArray] = {
        "row_index": pa.array(np.arange(start, start + n, dtype=np.int64))
    }
    for name in passthrough:
        cols[name] = inputs.column(name)
    cols["prediction"] = prediction_column(np.asarray(pred.predictions), fmt)
    if pred.probabilities is not None:
        probs = np.asarray(pred.probabilities, dtype=np.float64)
        labels = pred.classes or tuple(range(probs.shape[1]))
        for j, label in enumerate(labels):
            cols[f"proba_{label}"] = pa.array(probs[:, j])
    for key in PROVENANCE[:3]:
        cols[key] = pa.array([provenance[key]] * n, pa.string())
    cols["scored_at"] = pa.array([scored_at] * n, pa.timestamp("us", tz="UTC"))
    return pa.table(cols)


class PartWriter:
    """Writes tables of one schema into an open stream as Parquet or CSV."""

    def __init__(self, stream: pa.NativeFile, fmt: str) -> None:
        self._stream = stream
        self._fmt = fmt
        self._writer: Any = None

    def write(self, table: pa.Table) -> None:
        """Append ``table`` (the first one fixes the schema)."""
        if self._writer is None:
            self._writer = self._open(table.schema)
        self._writer.write_table(table)

    def _open(self, schema: pa.Schema) -> Any:
        if self._fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetWriter(self._stream, schema, compression="zstd")
        import pyarrow.csv as pacsv

        return pacsv.CSVWriter(self._stream, schema)

    def close(self) -> None:
        """Finish the file (footer for Parquet)."""
        if self._writer is not None:
            self._writer.close()
