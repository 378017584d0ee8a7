"""A small, hand-checkable prediction log with feedback, written straight into a migrated store
through SQLAlchemy Core, and what its export must contain. Used by the export unit tests (SQLite)
and the export contract test (SQLite and the real PostgreSQL).

Log (UTC):

* ``churn`` — a classifier (classes no/yes), inputs tenure/plan logged (plan redacted on some):
  v1 on 2025-05-01 (c1: 2 rows, c2: 1 row, c3: failed with 2 rows and no outputs), v2 on
  2025-05-02 (c4: 3 rows, 1 cached; c5: 2 rows both cached, no inputs logged);
* ``price`` — a regressor, inputs not logged: v3 on 2025-05-01 (p1: 1 row) and 2025-05-03
  (p2: 2 rows; p3: an unparseable request, 0 rows).

Feedback: row labels by prediction id (c1 row 0 twice — the later wins —, c1 row 1), a label
for every row of c4 (then a later correction of its row 2), a label by request id for c2's row 0
without prediction id, a value for p2 by request id for every row, and feedback for request
``shared`` of model price that must not reach churn's c3 (same request id).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pandas as pd
import pyarrow.parquet as pq
import sqlalchemy as sa

from sibyl.store._schema import feedback, prediction_log

D1, D2, D3 = date(2025, 5, 1), date(2025, 5, 2), date(2025, 5, 3)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def log_row(
    pid: str, model: str, version: str, ts: datetime, n_rows: int, **kw: Any
) -> dict[str, Any]:
    """A prediction_log row with defaults for what the test does not care about."""
    row: dict[str, Any] = {
        "id": pid,
        "request_id": kw.pop("request_id", f"req-{pid}"),
        "ts": ts,
        "model": model,
        "version": version,
        "experiment_id": None,
        "variant": None,
        "routing_key": None,
        "n_rows": n_rows,
        "inputs": None,
        "outputs": None,
        "latency_ms": 5.0,
        "status": "ok",
        "error": None,
        "cached_rows": 0,
        "fallback": None,
    }
    row.update(kw)
    return row


def classifier_outputs(labels: list[str], p_yes: list[float]) -> dict[str, Any]:
    return {
        "predictions": labels,
        "probabilities": [[1.0 - p, p] for p in p_yes],
        "classes": ["no", "yes"],
    }


def churn_inputs(rows: list[list[Any]]) -> dict[str, Any]:
    return {"columns": ["tenure", "plan"], "rows": rows}


LOG = [
    log_row("c1", "churn", "1", at(D1, 9), 2, latency_ms=4.0, experiment_id=3, variant="control",
            routing_key="u1", inputs=churn_inputs([[12, "basic"], [30, None]]),
            outputs=classifier_outputs(["no", "yes"], [0.2, 0.9])),
    log_row("c2", "churn", "1", at(D1, 10), 1, latency_ms=6.0,
            inputs=churn_inputs([[3, "pro"]]), outputs=classifier_outputs(["yes"], [0.7])),
    log_row("c3", "churn", "1", at(D1, 11), 2, latency_ms=1.5, status="error",
            error="model raised", request_id="shared"),
    log_row("c4", "churn", "2", at(D2, 8), 3, latency_ms=8.0, cached_rows=1,
            inputs=churn_inputs([[1, None], [2, None], [3, None]]),
            outputs=classifier_outputs(["no", "no", "yes"], [0.1, 0.4, 0.6])),
    log_row("c5", "churn", "2", at(D2, 9), 2, latency_ms=0.5, cached_rows=2,
            outputs=classifier_outputs(["yes", "no"], [0.8, 0.3])),
    log_row("p1", "price", "3", at(D1, 12), 1, latency_ms=2.0,
            outputs={"predictions": [10.5]}, request_id="shared"),
    log_row("p2", "price", "3", at(D3, 23, 59), 2, latency_ms=3.0, fallback="default",
            outputs={"predictions": [7.0, 8.25]}),
    log_row("p3", "price", "3", at(D3, 0, 1), 0, latency_ms=0.1, status="invalid",
            error="not JSON"),
]

T0 = at(D3, 12)


def fb(model: str, received: datetime, **kw: Any) -> dict[str, Any]:
    row = {"request_id": None, "routing_key": None, "experiment_id": None, "variant": None,
           "model": model, "version": None, "outcome": None, "value": None, "label": None,
           "received_at": received, "row": None, "event_at": None, "prediction_id": None}
    row.update(kw)
    return row


FEEDBACK = [
    fb("churn", T0, prediction_id="c1", request_id="req-c1", row=0, label="yes"),
    fb("churn", T0 + timedelta(days=2), prediction_id="c1", row=0, label="no"),  # late: wins
    fb("churn", T0, prediction_id="c1", row=1, label="yes"),
    fb("churn", T0, request_id="req-c2", row=0, label="no"),  # by request id only
    fb("churn", T0, prediction_id="c4", label="no"),  # every row of c4
    fb("churn", T0 + timedelta(hours=1), prediction_id="c4", row=2, label="yes"),  # correction
    fb("price", T0, request_id="req-p2", value=8.0),  # every row of p2
    fb("price", T0, request_id="shared", row=0, value=11.0),  # p1 (price), not churn's c3
]

# (prediction_id, row) → (label, value, feedback_at); rows not listed have no feedback
EXPECTED_FEEDBACK: dict[tuple[str, int | None], tuple[str | None, float | None, datetime]] = {
    ("c1", 0): ("no", None, T0 + timedelta(days=2)),
    ("c1", 1): ("yes", None, T0),
    ("c2", 0): ("no", None, T0),
    ("c4", 0): ("no", None, T0),
    ("c4", 1): ("no", None, T0),
    ("c4", 2): ("yes", None, T0 + timedelta(hours=1)),
    ("p1", 0): (None, 11.0, T0),
    ("p2", 0): (None, 8.0, T0),
    ("p2", 1): (None, 8.0, T0),
}
# (model, day) → exported rows (a request without rows still gives one)
EXPECTED_PARTITIONS = {
    ("churn", "2025-05-01"): 5,
    ("churn", "2025-05-02"): 5,
    ("price", "2025-05-01"): 1,
    ("price", "2025-05-03"): 3,
}


def read_back(out: Path) -> pd.DataFrame:
    """Every exported row through pyarrow, file by file (a regressor's numeric predictions and a
    classifier's labels do not share one Arrow type), with model and day from the paths."""
    frames = []
    for path in sorted(out.rglob("*.parquet")):
        frame = pq.read_table(path).to_pandas()
        parts = dict(p.split("=", 1) for p in path.relative_to(out).parts[:-1])
        frames.append(frame.assign(model=unquote(parts["model"]), day=parts["day"]))
    return pd.concat(frames, ignore_index=True)


def observed_feedback(frame: pd.DataFrame) -> dict[tuple[str, int | None], tuple[Any, ...]]:
    """The exported rows that carry feedback, in the form of :data:`EXPECTED_FEEDBACK`."""
    got = {}
    for r in frame.itertuples():
        if not (pd.isna(r.label) and pd.isna(r.value)):
            row = None if pd.isna(r.row) else int(r.row)
            got[(r.prediction_id, row)] = (
                None if pd.isna(r.label) else r.label,
                None if pd.isna(r.value) else r.value,
                r.feedback_at.to_pydatetime(),
            )
    return got


def insert(engine: sa.Engine, table: sa.Table, rows: Iterable[dict[str, Any]]) -> None:
    rows = list(rows)
    if rows:
        with engine.begin() as conn:
            conn.execute(sa.insert(table), rows)


def populate(engine: sa.Engine) -> None:
    """Write :data:`LOG` and :data:`FEEDBACK`."""
    insert(engine, prediction_log, LOG)
    insert(engine, feedback, FEEDBACK)


# SQLite generates the bulk log itself: building 200k rows in Python would dominate the test
_BULK_LOG = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < :count - 1)
INSERT INTO prediction_log (id, request_id, ts, model, version, n_rows, inputs, outputs,
                            latency_ms, status, cached_rows)
SELECT printf('%032x', i), 'bulk-' || i, datetime(:start + i * :step, 'unixepoch'), :model,
       CAST(1 + i % 2 AS TEXT), 1,
       json_object('columns', json_array('x'), 'rows', json_array(json_array(i))),
       json_object('predictions', json_array(CASE WHEN i % 100 > 50 THEN 'yes' ELSE 'no' END),
                   'probabilities', json_array(json_array(1.0 - (i % 100) / 100.0,
                                                          (i % 100) / 100.0)),
                   'classes', json_array('no', 'yes')),
       (i % 50) / 10.0, 'ok', 0
FROM n
"""
_BULK_FEEDBACK = """
INSERT INTO feedback (model, label, received_at, row, prediction_id)
SELECT model, 'yes', ts, 0, id FROM prediction_log WHERE model = :model AND rowid % 10 = 0
"""


@dataclass(frozen=True)
class Bulk:
    """``n`` one-row classifier requests of one model, ``step`` seconds apart from 2025-05-01
    00:00 UTC (versions 1 and 2 alternate), and a label for every tenth one."""

    n: int
    step: float = 1.0
    model: str = "bulk"

    @property
    def labelled(self) -> int:
        return self.n // 10

    def days(self) -> dict[str, int]:
        """Rows per UTC day."""
        per_day = round(86_400 / self.step)
        counts: dict[str, int] = {}
        for day in range(0, self.n, per_day):
            counts[(D1 + timedelta(days=day // per_day)).isoformat()] = min(per_day, self.n - day)
        return counts

    def populate(self, engine: sa.Engine) -> None:
        """Write the rows (SQLite only)."""
        start = int(at(D1, 0).timestamp())
        with engine.begin() as conn:
            conn.execute(sa.text(_BULK_LOG), {"count": self.n, "start": start,
                                              "step": self.step, "model": self.model})
            conn.execute(sa.text(_BULK_FEEDBACK), {"model": self.model})
