"""The Pandera schema of exported rows, and the error a chunk that breaks it raises.

:data:`EXPORT_SCHEMA` checks the columns every export has — dtypes, nullability, ``status`` in
:data:`KNOWN_STATUSES`, ``latency_ms`` ≥ 0, ``row`` ≥ 0, every ``proba_<class>`` in [0, 1] and
each row's probabilities summing to 1 (± :data:`PROBA_TOLERANCE`) — and allows only ``in_<name>``
and ``proba_<class>`` columns beyond them. :func:`validate` runs it (lazily, so every failure is
reported) and raises :class:`ExportValidationError` naming the first failing column and its rows.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from sibyl.errors import InvalidInputError
from sibyl.monitoring.export._frame import FIXED_DTYPES
from sibyl.monitoring.export._rows import INPUT_PREFIX, PROBA_PREFIX
from sibyl.monitoring.metrics import Status

# what the prediction log writes: the serving metrics' statuses, with "ok" for "success" and
# "invalid" for "invalid_input" (sibyl.monitoring.predlog)
_RENAMED_STATUSES = {Status.SUCCESS: "ok", Status.INVALID: "invalid"}
KNOWN_STATUSES = frozenset(_RENAMED_STATUSES.get(s, s.value) for s in Status)
PROBA_TOLERANCE = 1e-3
SHOWN_ROWS = 5
_NOT_NULL = {"prediction_id", "request_id", "ts", "day", "model", "version", "n_rows"}
_NOT_NULL |= {"latency_ms", "status", "cached_rows"}
_CHECKS: dict[str, list[pa.Check]] = {
    "row": [pa.Check.ge(0)],
    "n_rows": [pa.Check.ge(0)],
    "cached_rows": [pa.Check.ge(0)],
    "latency_ms": [pa.Check.ge(0)],
    "status": [pa.Check.isin(sorted(KNOWN_STATUSES))],
    "day": [pa.Check.str_matches(r"^\d{4}-\d{2}-\d{2}$")],
}
PROBA_SUM_CHECK = "probabilities_sum_to_one"


def _probabilities_sum_to_one(frame: pd.DataFrame) -> pd.Series[bool]:
    probas = frame.filter(regex=f"^{PROBA_PREFIX}")
    if probas.empty:
        return pd.Series(True, index=frame.index)
    unset = probas.isna().all(axis=1)
    return unset | (probas.sum(axis=1) - 1.0).abs().le(PROBA_TOLERANCE)


def _schema() -> pa.DataFrameSchema:
    columns: dict[str, pa.Column] = {
        name: pa.Column(
            dtype, checks=_CHECKS.get(name, []), nullable=name not in _NOT_NULL, required=True
        )
        for name, dtype in FIXED_DTYPES.items()
    }
    columns["prediction"] = pa.Column(nullable=True)
    columns[f"^{INPUT_PREFIX}"] = pa.Column(nullable=True, regex=True, required=False)
    columns[f"^{PROBA_PREFIX}"] = pa.Column(
        "float64", pa.Check.in_range(0.0, 1.0), nullable=True, regex=True, required=False
    )
    check = pa.Check(_probabilities_sum_to_one, name=PROBA_SUM_CHECK)
    return pa.DataFrameSchema(columns, checks=[check], strict=True, name="prediction_export")


EXPORT_SCHEMA = _schema()


class ExportValidationError(InvalidInputError):
    """Exported rows broke :data:`EXPORT_SCHEMA`; nothing of their partition was written.

    ``field`` is the failing column (``proba_*`` for the sum check), ``rows`` the offending
    (prediction_id, row) pairs of that column, ``failure_cases`` pandera's full report.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str,
        rows: list[tuple[str, int | None]],
        failure_cases: pd.DataFrame,
    ) -> None:
        super().__init__(message, field=field)
        self.rows = rows
        self.failure_cases = failure_cases


def validate(frame: pd.DataFrame, where: str) -> None:
    """Check ``frame`` against :data:`EXPORT_SCHEMA`; ``where`` names its partition in the error.

    Raises :class:`ExportValidationError`.
    """
    try:
        EXPORT_SCHEMA.validate(frame, lazy=True)
    except SchemaErrors as errors:
        raise _explain(frame, errors.failure_cases, where) from None


def _explain(frame: pd.DataFrame, cases: pd.DataFrame, where: str) -> ExportValidationError:
    first = cases.iloc[0]
    check = str(first["check"])
    same = cases[cases["check"] == first["check"]]
    if check == PROBA_SUM_CHECK:
        column = f"{PROBA_PREFIX}*"
        same = same.drop_duplicates("index")
    else:
        column = str(first["column"])
        same = same[same["column"] == first["column"]]
    rows = _offending_rows(frame, same["index"])
    shown = ", ".join(_describe(frame, r, column, v) for r, v in _pairs(same, column))
    more = f" and {len(rows) - SHOWN_ROWS} more" if len(rows) > SHOWN_ROWS else ""
    others = sorted({str(c) for c in cases["column"].dropna()} - {column})
    also = f"; other failing columns: {', '.join(others)}" if others else ""
    message = (
        f"Exported data of {where} failed validation: column '{column}' broke {check} in "
        f"{len(rows)} row(s): {shown}{more}{also}. Nothing of this partition was written; "
        "correct or delete those prediction_log rows and export again"
    )
    return ExportValidationError(message, field=column, rows=rows, failure_cases=cases)


def _ident(frame: pd.DataFrame, index: Any) -> tuple[str, int | None]:
    """The (prediction_id, row) of the frame's row at ``index``."""
    pid: Any = frame["prediction_id"].loc[index]
    row: Any = frame["row"].loc[index]
    return str(pid), None if pd.isna(row) else int(row)


def _offending_rows(frame: pd.DataFrame, index: pd.Series[Any]) -> list[tuple[str, int | None]]:
    return [_ident(frame, i) for i in index.dropna().unique() if i in frame.index]


def _pairs(cases: pd.DataFrame, column: str) -> list[tuple[Any, Any]]:
    head = cases.head(SHOWN_ROWS)
    return list(zip(head["index"], head["failure_case"], strict=True))


def _describe(frame: pd.DataFrame, index: Any, column: str, value: Any) -> str:
    if index is None or pd.isna(index) or index not in frame.index:
        return f"{value!r}"
    pid, row = _ident(frame, index)
    where = f"prediction {pid} row {'-' if row is None else row}"
    if column == f"{PROBA_PREFIX}*":
        total = float(frame.loc[index].filter(regex=f"^{PROBA_PREFIX}").sum())
        return f"{where} sums to {total:g}"
    return f"{where} = {value!r}"
