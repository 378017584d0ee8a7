"""Export for analysis: the prediction log joined with its feedback, to Parquet partitioned by
model and day, validated with Pandera, and queried with DuckDB::

    from sibyl.monitoring.export import export_log, query, accuracy_by_day

    report = export_log(get_store(url), Path("exports"), model="churn", since=date(2025, 5, 1))
    query("SELECT version, avg(latency_ms) FROM predictions GROUP BY version", Path("exports"))

Layout: ``<out>/model=<name>/day=<YYYY-MM-DD>/part-<n>.parquet`` (UTC days; ``model`` and
``day`` live in the directory names). One row per predicted row of each logged request:

* request columns — ``prediction_id`` (the log id), ``request_id``, ``row`` (index in the
  request; NULL for a request that had no rows), ``ts``, ``version``, ``experiment_id``,
  ``variant``, ``routing_key``, ``n_rows``, ``latency_ms`` (the request's), ``status``, ``error``,
  ``cached_rows``, ``cached`` (the log keeps only how many rows of a request came from the cache:
  ``true`` when all did, ``false`` when none did, NULL when some did), ``fallback``;
* ``in_<feature>`` per input column when the request's inputs were logged (redacted → NULL);
* ``prediction`` (a classifier's label as text), ``proba_<class>`` per class for classifiers;
* ``label``, ``value``, ``feedback_at``: the row's latest feedback (by ``received_at``) among
  feedback for its ``prediction_id`` and feedback without ``prediction_id`` for the same
  ``request_id`` and model — for that row or for every row of the request.

Contract: the log is read in batches (bounded memory, a server-side cursor on PostgreSQL); every
chunk is validated by :data:`EXPORT_SCHEMA` before it is written, and a failure
(:class:`ExportValidationError`, naming the column and rows) writes nothing of its partition. A
partition is swapped in whole, so re-exporting a day replaces it. Functions are safe to call from
several threads on different ``out`` directories; two exports into the same directory at once
are not supported. Needs ``pip install 'sibyl[analytics]'`` (pyarrow, pandera, duckdb).
"""

from __future__ import annotations

import importlib.util

from sibyl.errors import MissingExtraError

for _package in ("pyarrow", "pandera", "duckdb"):
    if importlib.util.find_spec(_package) is None:
        raise MissingExtraError(_package, "analytics")

from sibyl.monitoring.export._export import (  # noqa: E402
    CHUNK_ROWS,
    ExportReport,
    Partition,
    export_log,
)
from sibyl.monitoring.export._query import (  # noqa: E402
    VIEW,
    accuracy_by_day,
    connect,
    label_coverage,
    latency_percentiles,
    query,
)
from sibyl.monitoring.export._read import LogFilter, count_log_rows, engine_of  # noqa: E402
from sibyl.monitoring.export._schema import (  # noqa: E402
    EXPORT_SCHEMA,
    KNOWN_STATUSES,
    ExportValidationError,
    validate,
)

__all__ = [
    "CHUNK_ROWS",
    "EXPORT_SCHEMA",
    "KNOWN_STATUSES",
    "VIEW",
    "ExportReport",
    "ExportValidationError",
    "LogFilter",
    "Partition",
    "accuracy_by_day",
    "connect",
    "count_log_rows",
    "engine_of",
    "export_log",
    "label_coverage",
    "latency_percentiles",
    "query",
    "validate",
]
