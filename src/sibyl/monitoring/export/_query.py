"""Ad-hoc SQL over an export with DuckDB: a view ``predictions`` over every Parquet file under
the export root (hive partitions give ``model`` VARCHAR and ``day`` DATE; files of versions with
other features or classes are unified by column name), and canned analyses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from sibyl.errors import InvalidInputError, NotFoundError

VIEW = "predictions"


def connect(data_dir: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the view ``predictions`` over ``data_dir``.

    Raises :class:`NotFoundError` when ``data_dir`` holds no exported Parquet file.
    """
    root = Path(data_dir)
    if not root.is_dir() or next(root.glob("model=*/day=*/*.parquet"), None) is None:
        raise NotFoundError(
            f"No exported Parquet files under {root}; export the prediction log first with "
            f"`sibyl monitoring export --out {root}`"
        )
    pattern = str(root.resolve() / "**" / "*.parquet").replace("'", "''")
    con = duckdb.connect()
    con.execute(
        f"CREATE VIEW {VIEW} AS SELECT * FROM read_parquet('{pattern}', hive_partitioning = true, "
        "union_by_name = true, hive_types = {'model': 'VARCHAR', 'day': 'DATE'})"
    )
    return con


def query(sql: str, data_dir: Path, params: list[Any] | None = None) -> pd.DataFrame:
    """Run ``sql`` (which may read the view ``predictions``) over the export in ``data_dir``.

    Raises :class:`NotFoundError` for an empty export and :class:`InvalidInputError` (field
    ``sql``) when DuckDB rejects the statement.
    """
    con = connect(data_dir)
    try:
        return con.execute(sql, params or []).df()
    except duckdb.Error as error:
        raise InvalidInputError(
            f"DuckDB could not run the query ({str(error).splitlines()[0]}); the view "
            f"'{VIEW}' has the columns listed by `DESCRIBE {VIEW}`",
            field="sql",
        ) from error
    finally:
        con.close()


def _model_filter(model: str | None) -> tuple[str, list[Any]]:
    return ("WHERE model = ?", [model]) if model is not None else ("", [])


def accuracy_by_day(data_dir: Path, model: str | None = None) -> pd.DataFrame:
    """Per model, version and day: labelled rows, correct ones and accuracy (prediction equal to
    the feedback label, as text or as numbers); for regressors, rows with a feedback value and
    the mean absolute error."""
    where, params = _model_filter(model)
    sql = f"""
        SELECT model, version, day,
               count(label) AS labelled,
               count(*) FILTER (WHERE {_CORRECT}) AS correct,
               (count(*) FILTER (WHERE {_CORRECT}))::DOUBLE / nullif(count(label), 0)
                   AS accuracy,
               count(value) AS valued,
               avg(abs(TRY_CAST(CAST(prediction AS VARCHAR) AS DOUBLE) - value)) AS mae
        FROM {VIEW} {where}
        GROUP BY ALL ORDER BY model, version, day"""
    return query(sql, data_dir, params)


_CORRECT = (
    "label IS NOT NULL AND (CAST(prediction AS VARCHAR) = label OR "
    "TRY_CAST(CAST(prediction AS VARCHAR) AS DOUBLE) = TRY_CAST(label AS DOUBLE))"
)


def latency_percentiles(data_dir: Path, model: str | None = None) -> pd.DataFrame:
    """Per model and version: requests, p50/p95/p99 and max latency in ms (one value per
    request, not per row)."""
    where, params = _model_filter(model)
    sql = f"""
        WITH requests AS (
            SELECT model, version, prediction_id, any_value(latency_ms) AS latency_ms
            FROM {VIEW} {where} GROUP BY ALL)
        SELECT model, version, count(*) AS requests,
               quantile_cont(latency_ms, 0.5) AS p50_ms,
               quantile_cont(latency_ms, 0.95) AS p95_ms,
               quantile_cont(latency_ms, 0.99) AS p99_ms,
               max(latency_ms) AS max_ms
        FROM requests GROUP BY ALL ORDER BY model, version"""
    return query(sql, data_dir, params)


def label_coverage(data_dir: Path, model: str | None = None) -> pd.DataFrame:
    """Per model, version and day: rows, rows with feedback (a label or a value) and the
    share covered."""
    where, params = _model_filter(model)
    sql = f"""
        SELECT model, version, day, count(*) AS rows,
               count(*) FILTER (WHERE label IS NOT NULL OR value IS NOT NULL) AS with_feedback,
               (count(*) FILTER (WHERE label IS NOT NULL OR value IS NOT NULL))::DOUBLE
                   / count(*) AS coverage
        FROM {VIEW} {where}
        GROUP BY ALL ORDER BY model, version, day"""
    return query(sql, data_dir, params)
