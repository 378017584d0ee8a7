"""ONNX for pipelines over string columns: conversion, tokenizer options, verification on
generated texts, native fallback with the reason, and loading from a real MLflow registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sibyl.runtime import (
    ColumnSpec,
    Engine,
    InputSchema,
    Task,
    load_model,
    onnx_precheck,
)
from sibyl.runtime._onnx_frame import OnnxFramePredictor
from sibyl.runtime._onnx_text import re2_token_pattern
from sibyl.runtime.loader import verification_batch
from sibyl.settings import RuntimeSettings
from sibyl.zoo.threat import train as threat_train
from sibyl.zoo.threat.data import generate_events
from tests.unit.runtime.conftest import (
    assert_same_prediction,
    compile_with_native,
    download_version,
)

SETTINGS = RuntimeSettings()
TEXT = InputSchema([ColumnSpec("text", "str")])
EDGE_TEXTS = [
    "",
    "   ",
    "failed failed failed login login",  # repeated terms: sublinear_tf
    "FAILED SSH LOGINS for user ADMIN",  # case
    "user a admin",  # a one-letter word between two vocabulary words (bigrams)
    "sqlmap,user-agent;payload.probe",  # punctuation as separators
    "naïve café: ransomware über straße 日本語 🙂",  # non-ASCII
    "tab\tseparated\nmultiple\nfailed\tpassword attempts",
]


def _threat_frame(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series[Any]]:
    events = generate_events(n, seed)
    return events[["text"]].astype({"text": str}), events["category"].astype(str)


@pytest.fixture(scope="module")
def threat() -> Pipeline:
    x, y = _threat_frame(1500, 0)
    return threat_train.build_pipeline(0).fit(x, y)


# -- the threat model --------------------------------------------------------------------------
def test_threat_pipeline_compiles_verifies_and_matches_on_held_out_texts(threat: Pipeline) -> None:
    x, _ = _threat_frame(1500, 0)
    compiled, choice, native = compile_with_native(threat, TEXT, x)
    assert isinstance(compiled, OnnxFramePredictor), choice.reason
    assert choice.engine is Engine.ONNX
    assert choice.reason.startswith("compiled to ONNX; verified on 256 rows, max |Δ| ")
    assert choice.max_abs_diff is not None and choice.max_abs_diff < 1e-5
    held_out = pd.concat(
        [_threat_frame(400, 7)[0], pd.DataFrame({"text": EDGE_TEXTS})], ignore_index=True
    )
    batch = TEXT.from_frame(held_out)
    assert_same_prediction(compiled.predict(batch), native.predict(batch))
    for i in (0, 400, 402, 406):  # one row at a time too (empty / padded tokenizer outputs)
        assert_same_prediction(compiled.predict(batch[i : i + 1]), native.predict(batch[i : i + 1]))


def test_repeated_terms_match_thanks_to_the_sublinear_tf_fix(threat: Pipeline) -> None:
    # skl2onnx 1.20 computes log(tf + 1) instead of log(tf) + 1: only repeated terms show it
    x, _ = _threat_frame(1500, 0)
    compiled, _, native = compile_with_native(threat, TEXT, x)
    assert compiled is not None
    batch = TEXT.from_frame(pd.DataFrame({"text": ["failed failed failed password attempts"] * 2}))
    assert_same_prediction(compiled.predict(batch), native.predict(batch))


def test_threat_model_loads_from_a_registry_and_serves_through_onnx(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    version = threat_train.register(uri, (tmp_path / "artifacts").as_uri(), n=1500, seed=0)
    path = download_version(uri, threat_train.MODEL_NAME, version, tmp_path / "model")
    loaded = load_model(path, name="threat", version=version, settings=SETTINGS)
    assert loaded.engine.engine is Engine.ONNX, loaded.engine.reason
    assert loaded.engine.details["native_engine"] == "sklearn"
    assert isinstance(loaded.input_example, pd.DataFrame)
    records = [{"text": t} for t in [*EDGE_TEXTS, *_threat_frame(50, 3)[0]["text"]]]
    batch = loaded.schema.from_records(records)
    assert_same_prediction(loaded.predict(batch), loaded.native.predict(batch))


# -- mixed schemas -----------------------------------------------------------------------------
def _mixed_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    texts, labels = _threat_frame(n, seed)
    rng = np.random.default_rng(seed)
    frame = texts.assign(
        city=rng.choice(["paris", "oslo", "lima"], size=n),
        amount=rng.normal(100, 30, size=n),
        count=rng.integers(0, 20, size=n),
    )
    return frame, labels.to_numpy()


MIXED = InputSchema(
    [
        ColumnSpec("text", "str"),
        ColumnSpec("city", "str"),
        ColumnSpec("amount", "float"),
        ColumnSpec("count", "int"),
    ]
)


def test_text_numeric_and_one_hot_columns_convert_and_match() -> None:
    x, y = _mixed_frame(800, 0)
    features = ColumnTransformer(
        [
            ("text", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2), "text"),
            ("city", OneHotEncoder(), ["city"]),  # handle_unknown='error': only seen cities
            ("num", StandardScaler(), ["amount", "count"]),
        ]
    )
    model = make_pipeline(features, LogisticRegression(max_iter=1000)).fit(x, y)
    compiled, choice, native = compile_with_native(model, MIXED, x)
    assert compiled is not None, choice.reason
    assert choice.engine is Engine.ONNX
    inputs = [(i.name, i.type) for i in compiled.session.get_inputs()]
    assert inputs == [
        ("text", "tensor(string)"),
        ("city", "tensor(string)"),
        ("amount", "tensor(float)"),
        ("count", "tensor(int64)"),
    ]
    batch = MIXED.from_frame(_mixed_frame(200, 5)[0])
    assert_same_prediction(compiled.predict(batch), native.predict(batch))
    shuffled = batch[["count", "amount", "city", "text"]]  # columns are fed by name
    assert_same_prediction(compiled.predict(shuffled), native.predict(batch))


def test_missing_strings_in_a_nullable_column_are_predicted_natively() -> None:
    x, y = _mixed_frame(400, 0)
    model = make_pipeline(
        ColumnTransformer([("city", OneHotEncoder(handle_unknown="ignore"), ["city"])]),
        LogisticRegression(max_iter=500),
    ).fit(x[["city"]], y)
    schema = InputSchema([ColumnSpec("city", "str", required=False)])
    compiled, choice, native = compile_with_native(model, schema, x[["city"]])
    assert isinstance(compiled, OnnxFramePredictor), choice.reason
    batch = schema.from_records([{"city": "oslo"}, {"city": None}])
    assert batch["city"].isna().any()
    assert_same_prediction(compiled.predict(batch), native.predict(batch))  # native ran it


# -- fallbacks with reasons --------------------------------------------------------------------
def _text_model(vectorizer: Any, x: pd.DataFrame, y: Any) -> Pipeline:
    features = ColumnTransformer([("text", vectorizer, "text")])
    return make_pipeline(features, LogisticRegression(max_iter=1000)).fit(x, y)


def test_custom_tokenizer_serves_natively_with_the_reason() -> None:
    x, y = _threat_frame(600, 0)
    model = _text_model(TfidfVectorizer(tokenizer=str.split, token_pattern=None), x, y)
    compiled, choice, _ = compile_with_native(model, TEXT, x)
    assert compiled is None
    assert choice.engine is Engine.SKLEARN
    assert choice.reason == (
        "ONNX cannot run Pipeline ending in LogisticRegression: TfidfVectorizer has a custom "
        "tokenizer (a Python callable), which ONNX cannot express"
    )


def test_stop_words_serve_natively_with_the_reason() -> None:
    x, y = _threat_frame(600, 0)
    model = _text_model(CountVectorizer(stop_words=["the", "on", "for"]), x, y)
    compiled, choice = compile_with_native(model, TEXT, x)[:2]
    assert compiled is None
    assert "CountVectorizer removes stop words per token" in choice.reason


def test_token_pattern_onnx_tokenizes_differently_fails_verification_with_the_diff() -> None:
    # RE2's \b is ASCII-only: "café-crème" ends a token early in ONNX, not in scikit-learn
    rng = np.random.default_rng(0)
    words = ["café", "résumé", "naïve", "déjà-vu", "crème-brûlée", "plain", "token", "e-mail"]
    texts = [" ".join(rng.choice(words, size=6)) for _ in range(400)]
    y = np.array(["fr" if ("café" in t or "déjà-vu" in t) else "other" for t in texts])
    x = pd.DataFrame({"text": texts})
    pattern = r"(?u)\b\w+(?:-\w+)*\b"
    model = _text_model(CountVectorizer(token_pattern=pattern, ngram_range=(1, 2)), x, y)
    compiled, choice, _ = compile_with_native(model, TEXT, x)
    assert compiled is None
    assert choice.engine is Engine.SKLEARN
    assert choice.reason.startswith("verification failed: ONNX outputs differ from sklearn on ")
    assert "of 256 rows (max |Δ| " in choice.reason
    assert "the usual cause is a tokenizer mismatch (token_pattern" in choice.reason
    assert choice.reason.endswith("; serving natively")
    assert choice.max_abs_diff is not None and choice.max_abs_diff > 1e-2


def test_unconvertible_step_serves_natively_with_the_converter_error() -> None:
    x, y = _threat_frame(600, 0)
    model = _text_model(HashingVectorizer(n_features=256), x, y)
    compiled, choice = compile_with_native(model, TEXT, x)[:2]
    assert compiled is None
    assert choice.reason.startswith("skl2onnx cannot convert Pipeline ending in LogisticRegression")
    assert "HashingVectorizer" in choice.reason


def _undecorated(func: Any) -> Any:
    """A plain function of the same name calling ``func`` (no ONNX builder attached)."""

    def plain(frame: Any) -> Any:
        return func(frame)

    plain.__name__ = func.__name__
    return plain


def test_calendar_pipeline_without_builders_serves_natively_naming_function_transformers() -> None:
    from sklearn.preprocessing import FunctionTransformer

    from sibyl.zoo.calendar import train as calendar_train
    from sibyl.zoo.calendar.data import generate_events as calendar_events

    events = calendar_events(400, 0)
    x = calendar_train.serving_frame(events)
    model = calendar_train.build_pipeline(0)
    for _, transformer, _ in model.named_steps["features"].transformers:
        steps = [s for _, s in transformer.steps] if hasattr(transformer, "steps") else []
        for step in [transformer, *steps]:
            if isinstance(step, FunctionTransformer):
                step.func = _undecorated(step.func)
    model.fit(x, events["category"].astype(str))
    schema = InputSchema(
        [
            ColumnSpec("title", "str"),
            ColumnSpec("description", "str"),
            ColumnSpec("start", "datetime"),
            ColumnSpec("end", "datetime"),
            ColumnSpec("attendees", "int"),
            ColumnSpec("recurrence", "bool"),
            ColumnSpec("location_type", "str"),
        ]
    )
    compiled, choice = compile_with_native(model, schema, x)[:2]
    assert compiled is None
    assert choice.engine is Engine.SKLEARN
    assert choice.reason.startswith("ONNX cannot run Pipeline ending in LogisticRegression: ")
    for blocker in ("event_text", "time_features", "hour_slots"):
        assert f"FunctionTransformer({blocker}) runs Python code" in choice.reason
    assert "datetime" not in choice.reason  # date-time columns are ONNX inputs now


# -- pieces ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "re2"),
    [
        (r"(?u)\b\w\w+\b", r"[\p{L}\p{N}_]{2,}"),  # scikit-learn's default
        (r"\b\w+\b", r"[\p{L}\p{N}_]{1,}"),
        (r"(?u)\b\w{3,}\b", r"[\p{L}\p{N}_]{3,}"),
        (r"[\w-]+", r"[\p{L}\p{N}_-]+"),
        (r"\d+|[a-z]+", r"[\p{Nd}]+|[a-z]+"),
        (r"\S+", r"\S+"),
        (r"(\w+)", None),  # scikit-learn would keep only the group
        (r"\w+(?=:)", None),  # look-ahead: not RE2
    ],
)
def test_token_patterns_are_rewritten_with_unicode_classes(pattern: str, re2: str | None) -> None:
    assert re2_token_pattern(pattern) == re2


def test_text_schemas_are_tried_for_sklearn_only() -> None:
    assert onnx_precheck(SETTINGS, TEXT, "sklearn", Task.CLASSIFIER) is None
    reason = onnx_precheck(SETTINGS, TEXT, "xgboost", Task.CLASSIFIER)
    assert reason is not None and "only tried on those for sklearn pipelines" in reason


def test_verification_rows_recombine_example_tokens_with_edge_cases() -> None:
    schema = InputSchema([ColumnSpec("text", "str"), ColumnSpec("city", "str")])
    example = schema.from_records(
        [{"text": "failed login for admin", "city": "paris"}, {"text": "x y", "city": "oslo"}]
    )
    rows = verification_batch(example, schema, 300)
    assert isinstance(rows, pd.DataFrame)
    assert len(rows) == 300
    assert rows.iloc[:2].equals(example)
    pd.testing.assert_frame_equal(rows, verification_batch(example, schema, 300))  # seeded
    assert set(rows["city"]) == {"paris", "oslo"}  # categories: seen values only
    texts = list(rows["text"])
    assert "" in texts
    assert any(not t.isascii() for t in texts)
    assert any(t != t.lower() for t in texts)
    assert sum("failed" in t.lower() for t in texts) > 50
