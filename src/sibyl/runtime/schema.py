"""Input schemas: validate what callers send against a model's MLflow signature and build batches.

An :class:`InputSchema` turns any of the three row layouts the protocols use — records (one object
per row), columns (one list per column) and rows (one array per row, in signature order) — into
one canonical batch (see ``runtime.types``). It checks names (missing / extra columns), types
(safe casts only: int → float yes, float → int only when integral), shapes (row length) and the
NaN policy, and raises :class:`~sibyl.errors.InvalidInputError` naming the field and what was
expected. Sequence columns (MLflow ``Array(long)``, one list of ids per row) are checked by
``runtime._sequence`` against the model's sequence metadata and kept as list cells of a
DataFrame. Instances are immutable and safe to share between threads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from sibyl.errors import InvalidInputError
from sibyl.runtime._sequence import SequenceSpec
from sibyl.runtime._values import (
    EXPECT,
    Kind,
    cast_frame,
    column_length,
    fits,
    frame_from_columns,
    frame_from_records,
    frame_from_rows,
    require_rows,
    unbox,
)

if TYPE_CHECKING:
    import pandas as pd

    from sibyl.runtime.types import Batch

_NUMERIC: frozenset[str] = frozenset({"float", "int", "bool"})
# MLflow DataType names → our kinds
_MLFLOW_KIND: dict[str, Kind] = {
    "double": "float",
    "float": "float",
    "long": "int",
    "integer": "int",
    "boolean": "bool",
    "string": "str",
    "binary": "bytes",
    "datetime": "datetime",
}
_V2_DATATYPE = {
    "float": "FP64",
    "int": "INT64",
    "bool": "BOOL",
    "str": "BYTES",
    "bytes": "BYTES",
    "datetime": "BYTES",
    "seq": "INT64",
    "any": "BYTES",
}


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One input column: its name, kind and whether a value is required."""

    name: str
    kind: Kind
    required: bool = True

    @property
    def v2_datatype(self) -> str:
        """The Open Inference Protocol datatype of this column."""
        return _V2_DATATYPE[self.kind]


class InputSchema:
    """Validates inputs and builds batches for one model version.

    ``numeric`` schemas (every column float/int/bool) build a float64 ``ndarray`` of shape
    ``(n, len(columns))`` in column order; others build a ``pandas.DataFrame``. An *untyped* schema
    (model logged without a signature) accepts any columns and builds a DataFrame as given.
    ``sequence`` holds the rules of the ``seq`` columns (``None`` when there are none).
    """

    def __init__(
        self,
        columns: Sequence[ColumnSpec],
        *,
        nan_policy: Literal["reject", "allow"] = "reject",
        typed: bool = True,
        sequence: SequenceSpec | None = None,
    ) -> None:
        self.columns: tuple[ColumnSpec, ...] = tuple(columns)
        self.sequence = sequence
        self.names: tuple[str, ...] = tuple(c.name for c in self.columns)
        self.typed = typed
        self.numeric = (
            typed and bool(self.columns) and all(c.kind in _NUMERIC for c in self.columns)
        )
        self.nan_policy = nan_policy
        self._name_set = frozenset(self.names)
        self._index = {n: i for i, n in enumerate(self.names)}
        self._nullable = np.array([not c.required for c in self.columns], dtype=bool)
        self._strict_ints = tuple(i for i, c in enumerate(self.columns) if c.kind == "int")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_signature(
        cls,
        signature: Any,
        *,
        nan_policy: Literal["reject", "allow"] = "reject",
        sequence_metadata: Mapping[str, Any] | None = None,
    ) -> InputSchema:
        """Build from an ``mlflow.models.ModelSignature`` (or ``None`` → untyped).

        ``sequence_metadata`` is the model's ``metadata["sibyl"]["sequence"]`` (see
        :class:`SequenceSpec`); ``ValueError`` when it contradicts the signature.
        """
        if signature is None or signature.inputs is None:
            return cls([], nan_policy=nan_policy, typed=False)
        inputs = signature.inputs
        if inputs.is_tensor_spec():
            return cls._from_tensor_spec(inputs, nan_policy)
        specs = []
        for i, col in enumerate(inputs.inputs):
            name = col.name if col.name is not None else f"input_{i}"
            specs.append(ColumnSpec(name, _kind(col.type), bool(getattr(col, "required", True))))
        names, kinds = [c.name for c in specs], [c.kind for c in specs]
        seq = SequenceSpec.from_metadata(sequence_metadata, names, kinds)
        return cls(specs, nan_policy=nan_policy, sequence=seq)

    @classmethod
    def _from_tensor_spec(cls, inputs: Any, nan_policy: Literal["reject", "allow"]) -> InputSchema:
        spec = inputs.inputs[0]
        shape = tuple(spec.shape)
        width = shape[1] if len(shape) == 2 and shape[1] > 0 else 1
        kind: Kind = "int" if np.issubdtype(spec.type, np.integer) else "float"
        if spec.type == np.bool_:
            kind = "bool"
        base = spec.name or "input"
        return cls([ColumnSpec(f"{base}_{i}", kind) for i in range(width)], nan_policy=nan_policy)

    # -- building batches ---------------------------------------------------------------------
    def from_records(self, records: Any, field: str = "records") -> Batch:
        """One mapping per row, keyed by column name."""
        if not isinstance(records, list):
            raise InvalidInputError(
                f"'{field}' must be a list of objects, one per row", field=field
            )
        require_rows(records, field)
        if not self.typed:
            return frame_from_records(records)
        rows = []
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise InvalidInputError(
                    f"'{field}[{i}]' must be an object mapping column names to values, "
                    f"got {type(rec).__name__}",
                    field=f"{field}[{i}]",
                )
            if rec.keys() != self._name_set:
                self._raise_names(rec.keys(), f"{field}[{i}]")
            rows.append([rec[n] for n in self.names])
        return self._build(rows, field)

    def from_columns(self, columns: Any, field: str = "columns") -> Batch:
        """One list per column, all of the same length."""
        if not isinstance(columns, dict):
            raise InvalidInputError(
                f"'{field}' must be an object mapping column names to lists of values", field=field
            )
        if not self.typed:
            return frame_from_columns(columns, field)
        if columns.keys() != self._name_set:
            self._raise_names(columns.keys(), field)
        lists = [columns[n] for n in self.names]
        n = column_length(lists, self.names, field)
        return self._build([[col[r] for col in lists] for r in range(n)], field, columnar=True)

    def from_rows(
        self, rows: Any, field: str = "rows", names: Sequence[str] | None = None
    ) -> Batch:
        """One array per row; values in ``names`` order (default: signature order)."""
        if not isinstance(rows, list):
            raise InvalidInputError(f"'{field}' must be a list of rows (arrays)", field=field)
        require_rows(rows, field)
        if names is not None and tuple(names) != self.names:
            if not self.typed:
                return frame_from_rows(rows, names, field)
            self._check_name_list(names, field)
            order = [list(names).index(n) for n in self.names]
            rows = [[r[j] for j in order] if isinstance(r, list) else r for r in rows]
        if not self.typed:
            return frame_from_rows(rows, None, field)
        width = len(self.names)
        for i, r in enumerate(rows):
            if not isinstance(r, list) or len(r) != width:
                got = f"{len(r)} values" if isinstance(r, list) else type(r).__name__
                raise InvalidInputError(
                    f"'{field}[{i}]' must be an array of {width} values in the order "
                    f"{list(self.names)}, got {got}",
                    field=f"{field}[{i}]",
                )
        return self._build(rows, field)

    def from_frame(self, frame: pd.DataFrame, field: str = "data") -> Batch:
        """A pandas DataFrame (CSV bodies, input examples)."""
        if len(frame) == 0:
            raise InvalidInputError(f"'{field}' has no rows; send at least one", field=field)
        if not self.typed:
            return frame
        cols = [str(c) for c in frame.columns]
        if set(cols) != self._name_set:
            self._raise_names(cols, field)
        ordered = frame[list(self.names)]
        if self.numeric and all(dt.kind in "fiub" for dt in ordered.dtypes):
            return self._numeric_frame(ordered, field)  # batch scoring: no per-value objects
        records = ordered.to_numpy(dtype=object).tolist()
        return self._build([[unbox(v) for v in r] for r in records], field)

    def _numeric_frame(self, frame: pd.DataFrame, field: str) -> np.ndarray[Any, Any]:
        """A frame of numeric columns as a float64 batch, checked as ``_build_numeric`` does."""
        arr = frame.to_numpy(dtype=np.float64)
        if self._strict_ints:
            self._check_ints(arr, field)
        nans = np.isnan(arr)
        if nans.any():
            self._check_nans(nans, field)
        return arr

    # -- batch helpers ------------------------------------------------------------------------
    @staticmethod
    def n_rows(batch: Batch) -> int:
        """Rows in a batch."""
        return int(batch.shape[0])

    @staticmethod
    def concat(batches: Sequence[Batch]) -> Batch:
        """Join batches row-wise (all from the same schema)."""
        if len(batches) == 1:
            return batches[0]
        if isinstance(batches[0], np.ndarray):
            return np.concatenate(batches, axis=0)
        import pandas as pd

        return pd.concat(cast("list[pd.DataFrame]", list(batches)), ignore_index=True)

    def describe(self) -> list[dict[str, Any]]:
        """Columns as OIP tensor metadata (``shape [-1]`` per column, ``[-1, -1]`` for sequence
        columns: a row of ids per batch row)."""
        return [
            {
                "name": c.name,
                "datatype": c.v2_datatype,
                "shape": [-1, -1] if c.kind == "seq" else [-1],
            }
            for c in self.columns
        ]

    # -- internals ----------------------------------------------------------------------------
    def _build(self, rows: list[list[Any]], field: str, columnar: bool = False) -> Batch:
        if self.numeric:
            return self._build_numeric(rows, field)
        if self.sequence is not None:
            rows = self.sequence.check(rows, field, columnar)
        return self._build_frame(rows, field)

    def _build_numeric(self, rows: list[list[Any]], field: str) -> np.ndarray[Any, Any]:
        # fast path: numpy infers a numeric dtype only when every value is a number or a bool;
        # strings, nulls, nested or ragged rows fall through to the exact (slower) checks.
        # Below a few rows the fixed cost of the extra ufuncs outweighs the per-value loop.
        if len(rows) < 4:
            return self._build_numeric_exact(rows, field)
        try:
            arr = np.array(rows)
        except (TypeError, ValueError, OverflowError):
            return self._build_numeric_exact(rows, field)
        kind = arr.dtype.kind
        if arr.ndim != 2 or kind not in "fiub":
            return self._build_numeric_exact(rows, field)
        if kind != "f":
            return arr.astype(np.float64)
        arr = arr.astype(np.float64, copy=False)
        if self._strict_ints:
            self._check_ints(arr, field)
        nans = np.isnan(arr)
        if nans.any():
            self._check_nans(nans, field)
        return arr

    def _build_numeric_exact(self, rows: list[list[Any]], field: str) -> np.ndarray[Any, Any]:
        nulls = False
        for r in rows:
            for v in r:
                t = type(v)
                if t is not float and t is not int and t is not bool:
                    if v is None:
                        nulls = True
                        continue
                    if not isinstance(v, (np.floating, np.integer, np.bool_)):
                        self._raise_type(rows, field)
                    nulls = nulls or bool(np.isnan(v))
                elif t is float and v != v:  # NaN (never from JSON, possible from frames)
                    nulls = True
        try:
            arr = np.array(rows, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            self._raise_type(rows, field)
        if self._strict_ints:
            self._check_ints(arr, field)
        if nulls:
            self._check_nans(np.isnan(arr), field)
        return arr

    def _check_ints(self, arr: np.ndarray[Any, Any], field: str) -> None:
        sub = arr[:, self._strict_ints]
        bad = np.isfinite(sub) & (sub != np.floor(sub))
        if bad.any():
            r, j = (int(x[0]) for x in np.nonzero(bad))
            col = self.names[self._strict_ints[j]]
            raise InvalidInputError(
                f"'{field}' row {r} column '{col}': expected an integer, got {sub[r, j]!r} "
                "(float → int is not a safe cast)",
                field=col,
            )

    def _check_nans(self, nans: np.ndarray[Any, Any], field: str) -> None:
        if self.nan_policy == "allow":
            return
        bad = nans & ~self._nullable
        if bad.any():
            r, j = (int(x[0]) for x in np.nonzero(bad))
            raise InvalidInputError(
                f"'{field}' row {r} column '{self.names[j]}': null/NaN is not allowed for this "
                "model (a required column; send a number, or set the model's nan_policy to "
                "'allow')",
                field=self.names[j],
            )

    def _raise_type(self, rows: list[list[Any]], field: str) -> Any:
        for r, row in enumerate(rows):
            for j, v in enumerate(row):
                col = self.columns[j]
                if v is None or fits(col.kind, v):
                    continue
                raise InvalidInputError(
                    f"'{field}' row {r} column '{col.name}': expected {EXPECT[col.kind]}, "
                    f"got {type(v).__name__} {v!r:.40}",
                    field=col.name,
                )
        raise InvalidInputError(f"'{field}' has values that are not numbers", field=field)

    def _build_frame(self, rows: list[list[Any]], field: str) -> pd.DataFrame:
        import pandas as pd

        for r, row in enumerate(rows):
            for j, v in enumerate(row):
                col = self.columns[j]
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    if col.required and self.nan_policy == "reject":
                        raise InvalidInputError(
                            f"'{field}' row {r} column '{col.name}': null/NaN is not allowed "
                            f"(expected {EXPECT[col.kind]})",
                            field=col.name,
                        )
                elif not fits(col.kind, v):
                    raise InvalidInputError(
                        f"'{field}' row {r} column '{col.name}': expected {EXPECT[col.kind]}, "
                        f"got {type(v).__name__} {v!r:.40}",
                        field=col.name,
                    )
        frame = pd.DataFrame(rows, columns=list(self.names))
        return cast_frame(frame, self.columns)

    def _raise_names(self, keys: Any, field: str) -> None:
        got = set(keys)
        missing = [n for n in self.names if n not in got]
        extra = sorted(str(k) for k in got - self._name_set)
        parts = []
        if missing:
            parts.append(f"missing column(s) {missing}")
        if extra:
            parts.append(f"unexpected column(s) {extra}")
        raise InvalidInputError(
            f"'{field}': {' and '.join(parts)}; the model expects exactly {list(self.names)}",
            field=field,
        )

    def _check_name_list(self, names: Sequence[str], field: str) -> None:
        if not all(isinstance(n, str) for n in names):
            raise InvalidInputError(f"'{field}': column names must be strings", field=field)
        if len(set(names)) != len(names):
            raise InvalidInputError(
                f"'{field}': duplicate column names in {list(names)}", field=field
            )
        if set(names) != self._name_set:
            self._raise_names(names, field)


def _kind(dtype: Any) -> Kind:
    """Our kind of an MLflow column type: ``Array(long|integer)`` → ``seq``, other arrays and
    unknown types → ``any``."""
    if type(dtype).__name__ == "Array":
        item = getattr(dtype, "dtype", None)
        return "seq" if str(getattr(item, "name", item)) in ("long", "integer") else "any"
    return _MLFLOW_KIND.get(str(getattr(dtype, "name", dtype)), "any")
