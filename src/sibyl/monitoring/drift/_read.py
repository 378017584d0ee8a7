"""Reading a batch's columns: numeric ones as one float matrix, categorical ones as lists.

Accepted batches: a DataFrame, a 2-D array (columns named by the reader's ``array_columns``), a
mapping of columns, a list of records. A column the batch lacks reads as all-null; a value that
is not a number reads as NaN in a numeric column. Nulls are None, NaN, ±inf, ``pd.NA``/``NaT``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from sibyl.errors import InvalidInputError
from sibyl.monitoring.drift._outputs import output_columns, split_outputs
from sibyl.monitoring.drift._profile import (
    NULL_BIN,
    OTHER_BIN,
    CategoricalProfile,
    ColumnKind,
    NumericProfile,
    ReferenceProfile,
)


def lookup_table(values: Sequence[Any]) -> dict[Any, int]:
    """value → bin index (2 + rank) for a categorical profile's top values."""
    return {v: i + 2 for i, v in enumerate(values)}


def categorical_codes(values: Sequence[Any], table: Mapping[Any, int]) -> np.ndarray:
    """Bin index per value: its table entry, NULL for nulls, OTHER for anything else."""
    get = table.get
    out = np.empty(len(values), dtype=np.intp)
    for i, v in enumerate(values):
        try:
            code = get(v)
        except TypeError:  # unhashable (a list, a dict): never a reference value
            code = None
        out[i] = code if code is not None else (NULL_BIN if is_null(v) else _other(v, table))
    return out


def is_null(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return not math.isfinite(value)
    return False


def _other(value: Any, table: Mapping[Any, int]) -> int:
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, str | int | float | bool):
        return table.get(str(value), OTHER_BIN)  # profiles hold such values as text
    return OTHER_BIN


def as_float(values: Any) -> np.ndarray:
    """Values as float64; anything that is not a number becomes NaN (→ null)."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        series = pd.to_numeric(pd.Series(np.asarray(values, dtype=object)), errors="coerce")
        return series.to_numpy(dtype=np.float64, na_value=np.nan)


class BatchReader:
    """Reads one profile's columns (features, then outputs) out of batches; immutable."""

    def __init__(self, profile: ReferenceProfile, array_columns: Sequence[str]) -> None:
        self.profile = profile
        position = {name: i for i, name in enumerate(array_columns)}
        numeric = [c.name for c in profile.features if isinstance(c, NumericProfile)]
        self._numeric = numeric
        self._numeric_positions = [position.get(name) for name in numeric]
        self._identity = self._numeric_positions == list(range(len(numeric)))
        self._categorical = [
            (c.name, position.get(c.name))
            for c in profile.features
            if isinstance(c, CategoricalProfile)
        ]

    def read(self, batch: Any, outputs: Any, n: int) -> tuple[np.ndarray, list[Sequence[Any]]]:
        """``(numeric matrix n × numeric columns, [categorical values per column])``."""
        parts = [self._numeric_features(batch, n)] if self._numeric else []
        categorical = [_column(batch, name, pos, n) for name, pos in self._categorical]
        if self.profile.outputs:
            self._read_outputs(outputs, n, parts, categorical)
        if len(parts) == 1:
            return parts[0], categorical
        return (np.column_stack(parts) if parts else np.empty((n, 0))), categorical

    def _numeric_features(self, batch: Any, n: int) -> np.ndarray:
        if isinstance(batch, np.ndarray) and batch.dtype.kind in "fiub":
            if self._identity and batch.shape[1] >= len(self._numeric):
                return batch[:, : len(self._numeric)].astype(np.float64, copy=False)
        elif isinstance(batch, pd.DataFrame):
            try:
                return batch.reindex(columns=self._numeric).to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
            except (TypeError, ValueError):
                pass  # a column holds text: coerce column by column
        return np.column_stack(
            [
                as_float(_column(batch, name, pos, n))
                for name, pos in zip(self._numeric, self._numeric_positions, strict=True)
            ]
        )

    def _read_outputs(
        self, outputs: Any, n: int, numeric: list[np.ndarray], categorical: list[Sequence[Any]]
    ) -> None:
        profile = self.profile
        assert profile.output_kind is not None
        live = {}
        if outputs is not None:
            raw = split_outputs(outputs, profile.output_kind)
            live = output_columns(raw, profile.output_kind, profile.classes, n)
        columns: list[np.ndarray] = []
        for column in profile.outputs:
            values = live.get(column.name, (column.kind, None))[1]
            if column.kind is ColumnKind.NUMERIC:
                columns.append(np.full(n, np.nan) if values is None else as_float(values))
            else:
                categorical.append([None] * n if values is None else values)
        if columns:
            numeric.append(np.column_stack(columns))


def batch_length(batch: Any) -> int:
    """Rows of an accepted batch; InvalidInputError for anything else."""
    if isinstance(batch, pd.DataFrame):
        return len(batch)
    if isinstance(batch, np.ndarray):
        if batch.ndim != 2:
            raise InvalidInputError(
                f"a drift batch array must be 2-D (rows × columns), got shape {batch.shape}",
                field="batch",
            )
        return int(batch.shape[0])
    if isinstance(batch, Mapping):
        lengths = {len(v) for v in batch.values()}
        if len(lengths) > 1:
            raise InvalidInputError(
                f"the batch's columns have different lengths {sorted(lengths)}", field="batch"
            )
        return lengths.pop() if lengths else 0
    if isinstance(batch, Sequence) and not isinstance(batch, str | bytes):
        return len(batch)
    raise InvalidInputError(
        "a drift batch is a DataFrame, a 2-D array, a mapping of columns or a list of records, "
        f"got {type(batch).__name__}",
        field="batch",
    )


def _column(batch: Any, name: str, position: int | None, n: int) -> Any:
    """One column of any accepted batch; ``[None] * n`` when the batch lacks it."""
    if isinstance(batch, pd.DataFrame):
        return batch[name].to_numpy() if name in batch.columns else [None] * n
    if isinstance(batch, np.ndarray):
        ok = position is not None and position < batch.shape[1]
        return batch[:, position] if ok else [None] * n
    if isinstance(batch, Mapping):
        values = batch.get(name)
        return values if values is not None else [None] * n
    return [_field(row, name) for row in batch]


def _field(row: Any, name: str) -> Any:
    if not isinstance(row, Mapping):
        raise InvalidInputError(
            f"a list batch holds records (objects keyed by column), got {type(row).__name__}",
            field="batch",
        )
    return row.get(name)
