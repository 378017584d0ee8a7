"""Export of the prediction log to Parquet on a real SQLite store filled through SQLAlchemy Core
(tests/export_support.py): partitions, exploded rows, feedback join, idempotent re-export,
Pandera rejections, bounded memory on 200k log rows, DuckDB queries and the CLI."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from sibyl.cli._app import app
from sibyl.errors import InvalidInputError, NotFoundError
from sibyl.monitoring.export import (
    ExportValidationError,
    accuracy_by_day,
    export_log,
    label_coverage,
    latency_percentiles,
    query,
)
from sibyl.store import SQLStore
from sibyl.store._schema import prediction_log
from tests.export_support import (
    D1,
    D2,
    D3,
    EXPECTED_FEEDBACK,
    EXPECTED_PARTITIONS,
    LOG,
    Bulk,
    at,
    classifier_outputs,
    insert,
    log_row,
    observed_feedback,
    populate,
    read_back,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLStore]:
    s = SQLStore(f"sqlite:///{tmp_path / 'sibyl.db'}")
    s.migrate()
    populate(s.engine)
    yield s
    s.close()


def files_of(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.parquet"))}


def set_outputs(store: SQLStore, pid: str, outputs: dict[str, Any], **values: Any) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.update(prediction_log).where(prediction_log.c.id == pid)
                     .values(outputs=outputs, **values))


# ---- layout and content --------------------------------------------------------------------


def test_partitions_by_model_and_day_with_the_exploded_row_counts(
    store: SQLStore, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    report = export_log(store, out)
    found = {(p.model, p.day): p.rows for p in report.partitions}
    assert found == EXPECTED_PARTITIONS
    for model, day in EXPECTED_PARTITIONS:
        assert [p.name for p in (out / f"model={model}" / f"day={day}").iterdir()] == [
            "part-0.parquet"]
    exploded = sum(max(r["n_rows"], 1) for r in LOG)
    assert report.log_rows == len(LOG) and report.rows == exploded == 14
    frame = read_back(out)
    assert len(frame) == exploded
    per_partition = frame.groupby(["model", "day"]).size().to_dict()
    assert per_partition == EXPECTED_PARTITIONS
    # nothing left beside the export (staging directories are removed)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out-export-")]


def test_rows_carry_inputs_predictions_probabilities_and_flags(
    store: SQLStore, tmp_path: Path
) -> None:
    export_log(store, tmp_path / "out")
    frame = read_back(tmp_path / "out").set_index(["prediction_id", "row"]).sort_index()
    c1 = frame.loc[("c1", 1)]
    assert c1["in_tenure"] == 30 and pd.isna(c1["in_plan"])  # plan redacted on this row
    assert frame.loc[("c1", 0), "in_plan"] == "basic"
    assert c1["prediction"] == "yes" and c1["proba_yes"] == pytest.approx(0.9)
    assert c1["proba_no"] == pytest.approx(0.1)
    assert (c1["version"], c1["variant"], c1["routing_key"], c1["experiment_id"]) == (
        "1", "control", "u1", 3)
    assert c1["ts"] == at(D1, 9) and c1["latency_ms"] == 4.0 and c1["status"] == "ok"
    # a failed request: one row per row it carried, no prediction
    c3 = frame.loc["c3"]
    assert len(c3) == 2 and set(c3["status"]) == {"error"} and c3["prediction"].isna().all()
    assert c3["error"].iloc[0] == "model raised"
    # cached: all rows → true, none → false, some → unknown (the log keeps only the count)
    assert frame.loc["c5", "cached"].tolist() == [True, True]
    assert frame.loc["c4", "cached"].isna().all() and frame.loc["c4", "cached_rows"].iloc[0] == 1
    assert not frame.loc[("c2", 0), "cached"]
    # inputs not logged → NULL inputs
    assert frame.loc["c5", "in_tenure"].isna().all()
    # a regressor: numeric predictions, no probability, the fallback that answered
    price = read_back(tmp_path / "out").query("model == 'price'")
    assert price.set_index("prediction_id").loc["p2", "prediction"].tolist() == [7.0, 8.25]
    assert price["proba_yes"].isna().all()
    assert set(price.dropna(subset=["fallback"])["prediction_id"]) == {"p2"}
    # a request that had no rows still counts once, with row NULL
    p3 = price[price["prediction_id"] == "p3"]
    assert len(p3) == 1 and pd.isna(p3["row"].iloc[0]) and p3["status"].iloc[0] == "invalid"


def test_latest_feedback_is_joined_by_prediction_id_or_request_id(
    store: SQLStore, tmp_path: Path
) -> None:
    export_log(store, tmp_path / "out")
    frame = read_back(tmp_path / "out")
    got = observed_feedback(frame)
    assert got == EXPECTED_FEEDBACK
    # c3 (churn) shares request id "shared" with p1 (price): price's feedback stays with price
    assert frame[frame["prediction_id"] == "c3"]["value"].isna().all()


def test_since_until_and_model_select_whole_days(store: SQLStore, tmp_path: Path) -> None:
    report = export_log(store, tmp_path / "out", model="churn", since=D2, until=D2)
    assert [(p.model, p.day, p.rows) for p in report.partitions] == [("churn", "2025-05-02", 5)]
    report = export_log(store, tmp_path / "price", model="price", since=D3)
    assert [(p.model, p.day) for p in report.partitions] == [("price", "2025-05-03")]
    report = export_log(store, tmp_path / "early", until=D1)
    assert {(p.model, p.day) for p in report.partitions} == {
        ("churn", "2025-05-01"), ("price", "2025-05-01")}
    with pytest.raises(InvalidInputError, match=r"since .* is after until") as err:
        export_log(store, tmp_path / "x", since=D3, until=D1)
    assert err.value.field == "since"
    with pytest.raises(InvalidInputError, match="must be a date") as err:
        export_log(store, tmp_path / "x", since=at(D1, 3))  # type: ignore[arg-type]
    assert err.value.field == "since"


def test_reexport_is_idempotent_and_replaces_only_the_exported_days(
    store: SQLStore, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    export_log(store, out)
    first = files_of(out)
    export_log(store, out)
    assert files_of(out) == first  # same files, same content: no duplicated rows
    assert len(query("SELECT * FROM predictions", out)) == 14

    # two more requests on day 2, then re-export day 2 only: that partition is replaced
    insert(store.engine, prediction_log, [
        log_row("c6", "churn", "2", at(D2, 20), 2,
                outputs=classifier_outputs(["no", "no"], [0.2, 0.3])),
    ])
    export_log(store, out, since=D2, until=D2)
    after = files_of(out)
    assert {k: v for k, v in after.items() if "day=2025-05-02" not in k} == {
        k: v for k, v in first.items() if "day=2025-05-02" not in k}
    counts = query("SELECT model, day::VARCHAR AS day, count(*) AS n FROM predictions "
                   "GROUP BY ALL", out)
    assert {(r.model, r.day): r.n for r in counts.itertuples()} == {
        **EXPECTED_PARTITIONS, ("churn", "2025-05-02"): 7}


def test_model_names_are_escaped_in_paths_and_read_back_intact(
    store: SQLStore, tmp_path: Path
) -> None:
    insert(store.engine, prediction_log, [
        log_row("odd", "team/churn v2", "1", at(D1, 1), 1, outputs={"predictions": [1.5]})])
    export_log(store, tmp_path / "out", model="team/churn v2")
    assert (tmp_path / "out" / "model=team%2Fchurn%20v2" / "day=2025-05-01").is_dir()
    frame = query("SELECT model, prediction_id FROM predictions", tmp_path / "out")
    assert frame.values.tolist() == [["team/churn v2", "odd"]]


def test_malformed_documents_export_as_nulls_not_crashes(store: SQLStore, tmp_path: Path) -> None:
    insert(store.engine, prediction_log, [
        log_row("m1", "odd", "1", at(D1, 1), 2, outputs={"predictions": 5},
                inputs={"columns": ["a", "b"], "rows": [3, [1, 2, 3]]}),
        log_row("m2", "odd", "1", at(D1, 2), 1, inputs={"columns": ["a"], "rows": [[{"x": 1}]]},
                outputs={"predictions": [[1, 2]], "classes": ["p", "q"], "probabilities": [0.5]}),
    ])
    export_log(store, tmp_path / "out", model="odd")
    frame = read_back(tmp_path / "out").sort_values(["prediction_id", "row"])
    assert frame["prediction_id"].tolist() == ["m1", "m1", "m2"]
    # a row that is not a list → NULLs; a too long one is cut; mixed values → text (JSON)
    assert frame["in_a"].fillna("-").tolist() == ["-", "1", '{"x": 1}']
    assert frame["in_b"].fillna(-1).tolist() == [-1, 2, -1]
    assert pd.isna(frame["prediction"].iloc[0])
    assert frame["prediction"].iloc[2] == "[1, 2]"  # a classifier's list label, as JSON text
    assert frame[["proba_p", "proba_q"]].isna().all().all()


def test_files_hold_at_most_chunk_rows(store: SQLStore, tmp_path: Path) -> None:
    report = export_log(store, tmp_path / "out", model="churn", chunk_rows=2, batch_rows=3)
    assert {(p.day, p.rows, p.files) for p in report.partitions} == {
        ("2025-05-01", 5, 3), ("2025-05-02", 5, 2)}  # records are never split across files
    assert len(read_back(tmp_path / "out")) == 10


# ---- validation ------------------------------------------------------------------------------


def test_a_probability_out_of_range_is_rejected_naming_column_and_rows(
    store: SQLStore, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    export_log(store, out)
    before = files_of(out)
    set_outputs(store, "c4", {"predictions": ["no", "no", "yes"], "classes": ["no", "yes"],
                              "probabilities": [[0.9, 0.1], [-0.7, 1.7], [0.4, 0.6]]})
    with pytest.raises(ExportValidationError) as err:
        export_log(store, out)
    error = err.value
    assert error.field in ("proba_no", "proba_yes")
    assert error.rows == [("c4", 1)]
    assert "model 'churn' day 2025-05-02" in error.message and "c4" in error.message
    assert f"column '{error.field}'" in error.message and "in_range" in error.message
    assert files_of(out) == before  # the partition kept its previous files
    assert not list(tmp_path.glob(".out-export-*"))  # no staging left behind


def test_probabilities_that_do_not_sum_to_one_are_rejected(
    store: SQLStore, tmp_path: Path
) -> None:
    set_outputs(store, "c2", {"predictions": ["yes"], "classes": ["no", "yes"],
                              "probabilities": [[0.5, 0.6]]})
    with pytest.raises(ExportValidationError) as err:
        export_log(store, tmp_path / "out")
    assert err.value.field == "proba_*" and err.value.rows == [("c2", 0)]
    assert "probabilities_sum_to_one" in err.value.message and "sums to 1.1" in err.value.message
    # the partition with the bad row was not written; partitions before it were
    assert not (tmp_path / "out" / "model=churn" / "day=2025-05-01").exists()


def test_unknown_status_and_negative_latency_are_rejected(store: SQLStore, tmp_path: Path) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.update(prediction_log).where(prediction_log.c.id == "p1")
                     .values(status="exploded"))
    with pytest.raises(ExportValidationError) as err:
        export_log(store, tmp_path / "out", model="price")
    assert err.value.field == "status" and err.value.rows == [("p1", 0)]
    assert "'exploded'" in err.value.message
    with store.engine.begin() as conn:
        conn.execute(sa.update(prediction_log).where(prediction_log.c.id == "p1")
                     .values(status="ok", latency_ms=-1.0))
    with pytest.raises(ExportValidationError) as err:
        export_log(store, tmp_path / "out", model="price")
    assert err.value.field == "latency_ms"


def test_non_numeric_probabilities_fail_the_dtype_check(store: SQLStore, tmp_path: Path) -> None:
    set_outputs(store, "c2", {"predictions": ["yes"], "classes": ["no", "yes"],
                              "probabilities": [["low", "high"]]})
    with pytest.raises(ExportValidationError) as err:
        export_log(store, tmp_path / "out", model="churn")
    assert err.value.field.startswith("proba_")


# ---- scale ---------------------------------------------------------------------------------


def test_200k_log_rows_export_in_chunks_with_bounded_memory(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'bulk.db'}")
    store.migrate()
    bulk = Bulk(200_000)
    bulk.populate(store.engine)
    process = psutil.Process()
    start = process.memory_info().rss
    peak = [start]
    report = export_log(store, tmp_path / "out", chunk_rows=20_000,
                        on_progress=lambda _: peak.append(process.memory_info().rss))
    store.close()
    assert report.log_rows == report.rows == 200_000
    days = bulk.days()
    assert {p.day: p.rows for p in report.partitions} == days
    assert {p.day: p.files for p in report.partitions} == {
        d: math.ceil(n / 20_000) for d, n in days.items()}
    # one chunk of 20k rows and one batch of log rows in memory, not 200k log rows (those
    # alone, as Python objects, take several hundred MB)
    assert max(peak) - start < 150e6, f"grew by {(max(peak) - start) / 1e6:.0f} MB"
    totals = query("SELECT count(*) AS n, count(label) AS labelled, count(DISTINCT "
                   "prediction_id) AS ids FROM predictions", tmp_path / "out")
    assert totals.iloc[0].tolist() == [200_000, bulk.labelled, 200_000]


# ---- DuckDB ----------------------------------------------------------------------------------


@pytest.fixture
def exported(store: SQLStore, tmp_path: Path) -> Path:
    export_log(store, tmp_path / "out")
    return tmp_path / "out"


def test_query_sees_every_partition_with_model_and_day(exported: Path) -> None:
    frame = query("SELECT model, day, count(*) AS n FROM predictions GROUP BY ALL ORDER BY ALL",
                  exported)
    assert [(r.model, r.day.date(), r.n) for r in frame.itertuples()] == [
        ("churn", D1, 5), ("churn", D2, 5), ("price", D1, 1), ("price", D3, 3)]
    one = query("SELECT count(*) AS n FROM predictions WHERE model = ?", exported, ["price"])
    assert one["n"].iloc[0] == 4


def test_canned_queries(exported: Path) -> None:
    acc = accuracy_by_day(exported, model="churn")
    assert [(r.version, r.labelled, r.correct) for r in acc.itertuples()] == [
        ("1", 3, 2), ("2", 3, 3)]
    assert acc["accuracy"].tolist() == pytest.approx([2 / 3, 1.0])
    price = accuracy_by_day(exported, model="price").set_index("day")
    assert price.loc[pd.Timestamp(D3), "mae"] == pytest.approx((1.0 + 0.25) / 2)  # 8 vs 7, 8.25
    lat = latency_percentiles(exported).set_index(["model", "version"])
    assert lat.loc[("churn", "1"), "requests"] == 3  # per request, not per row
    assert lat.loc[("churn", "1"), "p50_ms"] == pytest.approx(4.0)
    assert lat.loc[("churn", "2"), "max_ms"] == pytest.approx(8.0)
    cov = label_coverage(exported).set_index(["model", "day"])
    assert cov.loc[("churn", pd.Timestamp(D1)), "with_feedback"] == 3
    assert cov.loc[("churn", pd.Timestamp(D1)), "coverage"] == pytest.approx(3 / 5)


def test_query_errors_say_what_to_do(exported: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="DESCRIBE predictions") as err:
        query("SELECT nope FROM predictions", exported)
    assert err.value.field == "sql"
    with pytest.raises(NotFoundError, match="sibyl monitoring export --out"):
        query("SELECT 1", tmp_path / "empty")


# ---- CLI -------------------------------------------------------------------------------------


def test_cli_export_then_query(store: SQLStore, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    out = tmp_path / "cli-out"
    url = f"sqlite:///{tmp_path / 'sibyl.db'}"
    result = runner.invoke(app, ["monitoring", "export", "--out", str(out), "--store-url", url,
                                 "--model", "churn", "--since", "2025-05-01"])
    assert result.exit_code == 0, result.output
    assert "10 rows from 5 log records in 2 files" in result.output
    assert sorted(p.name for p in (out / "model=churn").iterdir()) == [
        "day=2025-05-01", "day=2025-05-02"]

    result = runner.invoke(app, ["monitoring", "query", "SELECT version, count(*) AS n FROM "
                                 "predictions GROUP BY 1 ORDER BY 1", "--data", str(out)])
    assert result.exit_code == 0, result.output
    assert "version" in result.output and "│ 1 " in result.output

    result = runner.invoke(app, ["monitoring", "query", "SELECT version, count(*) AS n FROM "
                                 "predictions GROUP BY 1 ORDER BY 1", "--data", str(out), "--csv"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["version,n", "1,5", "2,5"]

    result = runner.invoke(app, ["monitoring", "export", "--out", str(out), "--store-url", url,
                                 "--since", "2025-05-03", "--until", "2025-05-01"])
    assert result.exit_code == 1 and "swap them" in result.output
    result = runner.invoke(app, ["monitoring", "query", "SELECT 1", "--data",
                                 str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert "export the prediction log first" in " ".join(result.output.split())
