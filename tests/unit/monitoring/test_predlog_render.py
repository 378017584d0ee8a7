"""Renderer: what a buffered entry becomes in the prediction log — inputs in every decoded
layout, sampling, redaction by name and pattern, outputs, failures, fallbacks, long strings."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sibyl.errors import InvalidInputError
from sibyl.monitoring.metrics import Status
from sibyl.monitoring.predlog import Renderer, tabulate
from sibyl.runtime.schema import ColumnSpec, InputSchema
from sibyl.runtime.types import Prediction, Task
from sibyl.service import Inputs, PredictRequest, PredictResult
from sibyl.settings import PredictionLogSettings

SCHEMA = InputSchema([ColumnSpec("a", "float"), ColumnSpec("email", "string")])
PRED = Prediction(np.array([1, 0]), np.array([[0.2, 0.8], [0.9, 0.1]]), (1, 0))


def result(**kw: Any) -> PredictResult:
    fields: dict[str, Any] = {"model": "churn", "version": "3", "engine": "sklearn",
                              "request_id": "rid", "prediction": PRED,
                              "task": Task.CLASSIFIER, "schema": SCHEMA}  # fmt: skip
    fields.update(kw)
    return PredictResult(**fields)


def req(inputs: Inputs | None = None, **kw: Any) -> PredictRequest:
    rows = Inputs("records", [{"a": 1.0, "email": "x@y"}, {"a": 2.0, "email": "z@w"}])
    return PredictRequest("churn", inputs or rows, request_id="rid", **kw)


def answered(r: PredictRequest, res: PredictResult, cached: int = 0) -> tuple[Any, ...]:
    return (1_700_000_000.0, 0.0123, r, res, None, cached, None, None)


def renderer(**kw: Any) -> Renderer:
    kw.setdefault("inputs", "all")
    return Renderer(PredictionLogSettings(**kw))


def test_an_answered_request_becomes_a_full_record() -> None:
    rec = renderer().record(answered(req(routing_key="user-1"), result(), cached=1))
    assert len(rec.id) == 32 and rec.request_id == "rid"
    assert (rec.model, rec.version, rec.status, rec.n_rows) == ("churn", "3", "ok", 2)
    assert rec.ts.timestamp() == 1_700_000_000.0 and rec.latency_ms == pytest.approx(12.3)
    assert rec.routing_key == "user-1" and rec.cached_rows == 1
    assert rec.inputs == {"columns": ["a", "email"], "rows": [[1.0, "x@y"], [2.0, "z@w"]]}
    assert rec.outputs is not None and rec.outputs["classes"] == [1, 0]
    assert rec.outputs["predictions"] is PRED.predictions  # serialised later, off the path


def test_ids_are_unique() -> None:
    r = renderer()
    entry = answered(req(), result())
    assert len({r.record(entry).id for _ in range(1000)}) == 1000


@pytest.mark.parametrize(
    ("inputs", "names", "columns", "rows"),
    [
        (Inputs("records", [{"a": 1, "b": 2}, {"b": 3, "c": 4}]), (),
         ["a", "b", "c"], [[1, 2, None], [None, 3, 4]]),
        (Inputs("columns", {"a": [1, 2], "b": [3, 4]}), (), ["a", "b"], [[1, 3], [2, 4]]),
        (Inputs("rows", [[1, 2], [3, 4]], ["x", "y"]), ("a", "b"), ["x", "y"], [[1, 2], [3, 4]]),
        (Inputs("rows", [[1, 2, 5]]), ("a", "b"), ["a", "b", "2"], [[1, 2, 5]]),
        (Inputs("frame", pd.DataFrame({"a": [1.5], "s": ["q"]})), (), ["a", "s"], [[1.5, "q"]]),
        (Inputs("batch", np.array([[1.0, 2.0]])), ("a", "b"), ["a", "b"], [[1.0, 2.0]]),
    ],
)  # fmt: skip
def test_every_decoded_layout_becomes_columns_and_rows(
    inputs: Inputs, names: tuple[str, ...], columns: list[str], rows: list[list[Any]]
) -> None:
    assert tabulate(inputs, names) == (columns, rows)


def test_redaction_by_name_and_by_pattern_copies_the_rows() -> None:
    data = [{"a": 1.0, "Email": "x@y", "home_phone": "555", "name": "n"}]
    r = renderer(redact=["email"], redact_pattern=r"(.*_)?phone")
    rec = r.record(answered(req(Inputs("records", data)), result()))
    assert rec.inputs == {"columns": ["a", "Email", "home_phone", "name"],
                          "rows": [[1.0, None, None, "n"]]}  # fmt: skip
    positional = [[1.0, "x@y"]]
    rec = r.record(answered(req(Inputs("rows", positional)), result()))
    assert rec.inputs == {"columns": ["a", "email"], "rows": [[1.0, None]]}
    assert positional == [[1.0, "x@y"]]  # the request's own data is left alone


def test_sampling_keeps_the_configured_share_of_inputs() -> None:
    draws: Iterator[float] = itertools.cycle([0.05, 0.5, 0.95, 0.15])
    r = Renderer(PredictionLogSettings(inputs="sample", sample_rate=0.2), rng=lambda: next(draws))
    kept = [r.record(answered(req(), result())).inputs is not None for _ in range(8)]
    assert kept == [True, False, False, True] * 2
    assert renderer(inputs="none").record(answered(req(), result())).inputs is None


def test_outputs_can_be_left_out() -> None:
    assert renderer(outputs=False).record(answered(req(), result())).outputs is None


def test_a_failure_is_logged_with_its_status_message_and_resolved_version() -> None:
    r = Renderer(PredictionLogSettings(inputs="all"),
                 resolve=lambda model, ref: ("5", ("a", "email")))  # fmt: skip
    exc = InvalidInputError("column 'a' must be a number", field="a")
    entry = (1.0, 0.001, req(Inputs("rows", [["x", "y"]])), exc, Status.INVALID, 0, 9, "cand")
    rec = r.record(entry)
    assert (rec.status, rec.version, rec.n_rows, rec.outputs) == ("invalid", "5", 1, None)
    assert rec.error == "column 'a' must be a number"
    assert (rec.experiment_id, rec.variant) == (9, "cand")
    assert rec.inputs == {"columns": ["a", "email"], "rows": [["x", "y"]]}
    unresolved = Renderer(PredictionLogSettings()).record(
        (1.0, 0.0, req(ref="staging"), exc, Status.TIMEOUT, 0, None, None)
    )
    assert (unresolved.status, unresolved.version) == ("timeout", "staging")


def test_a_fallback_answer_is_logged_under_the_version_asked() -> None:
    r = Renderer(PredictionLogSettings(), resolve=lambda model, ref: ("4", ()))
    fb = result(model="rules", version="1", fallback="model rules:1", fallback_reason="timeout")
    rec = r.record(answered(req(), fb))
    assert (rec.model, rec.version, rec.fallback, rec.error) == (
        "churn", "4", "model rules:1", "timeout")  # fmt: skip


def test_strings_longer_than_their_column_are_cut() -> None:
    rec = renderer().record(answered(req(routing_key="k" * 1000), result(version="v" * 100)))
    assert rec.routing_key is not None and len(rec.routing_key) == 256
    assert len(rec.version) == 64 and rec.version.endswith("…")


def test_malformed_inputs_are_not_logged_but_the_request_is() -> None:
    rec = renderer().record(answered(req(Inputs("records", [1, 2])), result()))
    assert rec.inputs is None and rec.status == "ok"
