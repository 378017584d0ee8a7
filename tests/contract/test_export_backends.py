"""The prediction-log export on every store backend: SQLite and the REAL PostgreSQL on
127.0.0.1:5432 (a fresh database, dropped afterwards; the log is streamed through a server-side
cursor there). The same log (tests/export_support.py) must export to the same rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sibyl.monitoring.export import accuracy_by_day, export_log, query
from sibyl.store import SQLStore
from tests.contract.store_support import Backend
from tests.export_support import (
    D2,
    EXPECTED_FEEDBACK,
    EXPECTED_PARTITIONS,
    LOG,
    observed_feedback,
    populate,
    read_back,
)


@pytest.fixture(scope="module")
def store(backend: Backend) -> Iterator[SQLStore]:
    """One migrated store per backend holding the reference log and its feedback."""
    with backend.empty() as url:
        s = SQLStore(url)
        s.migrate()
        populate(s.engine)
        yield s
        s.close()


@pytest.mark.parametrize(("batch_rows", "chunk_rows"), [(2000, 100_000), (3, 4)])
def test_export_matches_the_log_and_its_feedback(
    store: SQLStore, tmp_path: Path, batch_rows: int, chunk_rows: int
) -> None:
    out = tmp_path / "out"
    report = export_log(store, out, batch_rows=batch_rows, chunk_rows=chunk_rows)
    assert {(p.model, p.day): p.rows for p in report.partitions} == EXPECTED_PARTITIONS
    assert report.log_rows == len(LOG)
    frame = read_back(out)
    assert len(frame) == sum(EXPECTED_PARTITIONS.values())
    assert observed_feedback(frame) == EXPECTED_FEEDBACK
    assert frame.groupby("prediction_id").size().to_dict() == {
        r["id"]: max(r["n_rows"], 1) for r in LOG}
    c1 = frame[frame["prediction_id"] == "c1"].sort_values("row")
    assert c1["in_tenure"].tolist() == [12, 30] and c1["proba_yes"].tolist() == [0.2, 0.9]


def test_reexport_of_a_day_replaces_it(store: SQLStore, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_log(store, out)
    export_log(store, out, since=D2, until=D2)
    export_log(store, out, model="churn")
    counts = query("SELECT model, day::VARCHAR AS day, count(*) AS n FROM predictions "
                   "GROUP BY ALL", out)
    assert {(r.model, r.day): r.n for r in counts.itertuples()} == EXPECTED_PARTITIONS
    acc = accuracy_by_day(out, model="churn")
    assert acc["accuracy"].tolist() == pytest.approx([2 / 3, 1.0])
