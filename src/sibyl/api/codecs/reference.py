"""Reference data uploaded to build a drift profile
(``PUT /v1/monitoring/models/{name}/versions/{version}/profile``).

JSON (``application/json``), exactly one layout as in the native predict protocol::

    {"records": [{"f0": 1.0, "plan": "pro"}, ...]}     one object per row
    {"columns": {"f0": [1.0, ...], "plan": [...]}}       one list per column
    {"rows": [[1.0, "pro"], ...], "names": ["f0", "plan"]}

plus optional ``outputs``: the model's outputs on those rows, to profile prediction drift —
``{"predictions": [...], "probabilities"?: [[...]], "classes"?: [...]}`` or a plain list of
predictions. CSV (``text/csv``): a header line and rows, read as MLflow's ``/invocations`` reads
them (inputs only). Errors are ``InvalidInputError`` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sibyl.api.codecs import mlflow as mlflow_codec
from sibyl.api.codecs._common import Meta, loads, require_object
from sibyl.errors import InvalidInputError, UnsupportedMediaTypeError

_LAYOUTS = ("records", "columns", "rows")
_KNOWN = frozenset({*_LAYOUTS, "names", "outputs"})


@dataclass(frozen=True, slots=True)
class ReferenceData:
    """Decoded reference rows and, optionally, the model's outputs on them."""

    frame: pd.DataFrame
    outputs: Any = None


def decode(body: bytes, content_type: str) -> ReferenceData:
    """Parse an uploaded reference data set (see the module docstring)."""
    media = content_type.split(";")[0].strip().lower()
    if media in ("text/csv", "application/csv"):
        request = mlflow_codec.decode(body, content_type, "", None, Meta(""))
        return ReferenceData(request.inputs.data)
    if media not in ("application/json", ""):
        raise UnsupportedMediaTypeError(
            f"Unsupported content type {content_type!r}; send application/json "
            "(records, columns or rows) or text/csv"
        )
    payload = require_object(loads(body), "request body")
    unknown = sorted(set(payload) - _KNOWN)
    if unknown:
        raise InvalidInputError(
            f"Unknown field '{unknown[0]}'; allowed: {sorted(_KNOWN)}", field=unknown[0]
        )
    layouts = [k for k in _LAYOUTS if k in payload]
    if len(layouts) != 1:
        raise InvalidInputError(
            "The body needs exactly one of 'records' (list of row objects), 'columns' (object "
            f"of column lists) or 'rows' with 'names'; got {layouts or sorted(payload)[:5]}",
            field="body",
        )
    frame = _frame(layouts[0], payload)
    if frame.empty:
        raise InvalidInputError("The reference data has no rows", field=layouts[0])
    return ReferenceData(frame, _outputs(payload.get("outputs"), len(frame)))


def _frame(layout: str, payload: dict[str, Any]) -> pd.DataFrame:
    value = payload[layout]
    if layout == "records":
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise InvalidInputError("'records' must be a list of objects", field="records")
        return pd.DataFrame.from_records(value)
    if layout == "columns":
        if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
            raise InvalidInputError("'columns' must map column names to lists", field="columns")
        lengths = {len(v) for v in value.values()}
        if len(lengths) > 1:
            raise InvalidInputError(
                f"The columns have different lengths {sorted(lengths)}", field="columns"
            )
        return pd.DataFrame(value)
    names = payload.get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidInputError("'rows' needs 'names', the list of column names", field="names")
    if not isinstance(value, list) or any(
        not isinstance(r, list) or len(r) != len(names) for r in value
    ):
        raise InvalidInputError(
            f"'rows' must be a list of arrays of {len(names)} values (one per name)",
            field="rows",
        )
    return pd.DataFrame(value, columns=names)


def _outputs(value: Any, n: int) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        value = {"predictions": value}
    if not isinstance(value, Mapping) or not isinstance(value.get("predictions"), list):
        raise InvalidInputError(
            "'outputs' must be a list of predictions or an object with 'predictions' (and "
            "optionally 'probabilities' and 'classes')",
            field="outputs",
        )
    for key in ("predictions", "probabilities"):
        part = value.get(key)
        if part is not None and (not isinstance(part, list) or len(part) != n):
            raise InvalidInputError(
                f"'outputs.{key}' must hold one entry per row ({n})", field=f"outputs.{key}"
            )
    return dict(value)


__all__ = ["ReferenceData", "decode"]
