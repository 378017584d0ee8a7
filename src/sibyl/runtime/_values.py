"""Value-level helpers of :mod:`sibyl.runtime.schema`: type fitting, pandas frames, errors."""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sibyl.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

    from sibyl.runtime.schema import ColumnSpec

Kind = Literal["float", "int", "bool", "str", "bytes", "datetime", "seq", "any"]
EXPECT = {
    "float": "a number",
    "int": "an integer",
    "bool": "true or false",
    "str": "a string",
    "bytes": "a base64 string",
    "datetime": "an ISO-8601 date-time string",
    "seq": "a list of integers",
    "any": "any value",
}


def fits(kind: Kind, v: Any) -> bool:
    t = type(v)
    if kind == "float":
        return t is float or t is int or t is bool or isinstance(v, (np.floating, np.integer))
    if kind == "int":
        if t is float:
            return bool(v.is_integer())
        return t is int or t is bool or isinstance(v, np.integer)
    if kind == "bool":
        return t is bool or (t is int and v in (0, 1)) or isinstance(v, np.bool_)
    if kind == "datetime":  # ISO strings from JSON; datetime values from frames (input examples)
        return t is str or isinstance(v, (datetime.date, np.datetime64))
    if kind in ("str", "bytes"):
        return t is str
    if kind == "seq":  # the items are checked by runtime._sequence before this
        return t is list
    return True


def cast_frame(frame: pd.DataFrame, columns: Sequence[ColumnSpec]) -> pd.DataFrame:
    import pandas as pd

    for c in columns:
        if c.kind == "float":
            frame[c.name] = frame[c.name].astype("float64")
        elif c.kind == "int" and c.required:
            frame[c.name] = frame[c.name].astype("int64")
        elif c.kind == "datetime":
            try:
                frame[c.name] = pd.to_datetime(frame[c.name], format="ISO8601")
            except (ValueError, TypeError) as exc:
                raise InvalidInputError(
                    f"column '{c.name}': expected ISO-8601 date-times ({exc})", field=c.name
                ) from exc
        elif c.kind == "bytes":
            import base64

            try:
                frame[c.name] = [
                    None if v is None else base64.b64decode(v, validate=True) for v in frame[c.name]
                ]
            except ValueError as exc:
                raise InvalidInputError(
                    f"column '{c.name}': expected base64 strings ({exc})", field=c.name
                ) from exc
    return frame


def require_rows(rows: list[Any], field: str) -> None:
    if not rows:
        raise InvalidInputError(f"'{field}' is empty; send at least one row", field=field)


def column_length(lists: list[Any], names: Sequence[str], field: str) -> int:
    lengths = set()
    for name, col in zip(names, lists, strict=True):
        if not isinstance(col, list):
            raise InvalidInputError(f"'{field}.{name}' must be a list of values", field=name)
        lengths.add(len(col))
    if len(lengths) > 1:
        raise InvalidInputError(
            f"'{field}': columns have different lengths {sorted(lengths)}; every column needs "
            "one value per row",
            field=field,
        )
    n = lengths.pop() if lengths else 0
    if n == 0:
        raise InvalidInputError(f"'{field}' is empty; send at least one row", field=field)
    return n


def unbox(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def frame_from_records(records: list[Any]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame.from_records(records)


def frame_from_columns(columns: Mapping[str, Any], field: str) -> pd.DataFrame:
    import pandas as pd

    column_length(list(columns.values()), list(columns), field)
    return pd.DataFrame(dict(columns))


def frame_from_rows(rows: list[Any], names: Sequence[str] | None, field: str) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.DataFrame(rows, columns=list(names) if names is not None else None)
    except ValueError as exc:
        raise InvalidInputError(f"'{field}': {exc}", field=field) from exc
