"""ONNX for numeric schemas whose pipeline selects columns by name: one input per column,
verification including NaN rows, native fallback with the reason, and loading from a real
MLflow registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sibyl.runtime import (
    ColumnSpec,
    Engine,
    InputSchema,
    OnnxPredictor,
    Prediction,
    SklearnPredictor,
    compile_onnx,
    load_model,
)
from sibyl.runtime._onnx_columns import (
    OnnxColumnsPredictor,
    nullable_columns,
    rows_with_missing,
    selects_by_name,
)
from sibyl.runtime.loader import NAN_POLICY_TAG, verification_batch
from sibyl.runtime.types import Batch
from sibyl.settings import RuntimeSettings
from tests.unit.runtime.conftest import (
    FEATURES,
    Zoo,
    assert_same_prediction,
    compile_with_native,
    download_version,
)

SETTINGS = RuntimeSettings()
SCALED = ["a", "b", "c"]
SCHEMA = InputSchema(
    [*(ColumnSpec(c, "float") for c in SCALED), ColumnSpec("k", "int"), ColumnSpec("p", "float")],
    nan_policy="allow",
)


def _frame(n: int, seed: int, holes: float = 0.15) -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    """Floats a, b, c with NaN holes, an integer code k (6 is rare), a passed-through p."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(n, 3)) * [1.0, 10.0, 100.0] + [0, 50, 500], columns=SCALED)
    x["k"] = rng.choice([1, 2, 3, 4, 5, 6], size=n, p=[0.3, 0.25, 0.2, 0.15, 0.08, 0.02])
    x["p"] = rng.normal(size=n)
    y = (x["a"] + x["b"] / 10 - 5 + (x["k"] % 2) + x["p"] > 0).astype(int).to_numpy()
    for col in SCALED:
        x.loc[rng.random(n) < holes, col] = np.nan
    return x, y


def _by_name(handle_unknown: str = "infrequent_if_exist") -> Pipeline:
    numeric = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler())
    code = OneHotEncoder(handle_unknown=handle_unknown, min_frequency=20)
    features = ColumnTransformer(
        [("num", numeric, SCALED), ("code", code, ["k"]), ("keep", "passthrough", ["p"])]
    )
    return Pipeline([("features", features), ("clf", LogisticRegression(max_iter=1000))])


def _fresh_rows() -> np.ndarray[Any, Any]:
    """Held-out rows with NaN holes, a row of NaN floats, and codes never seen (0, 9)."""
    x, _ = _frame(300, seed=7, holes=0.3)
    x.loc[0, SCALED] = np.nan
    x.loc[1, "k"], x.loc[2, "k"] = 0, 9
    batch = SCHEMA.from_frame(x)
    assert isinstance(batch, np.ndarray)
    return batch


# -- the by-name pipeline ----------------------------------------------------------------------
@pytest.mark.parametrize("handle_unknown", ["infrequent_if_exist", "ignore"])
def test_by_name_pipeline_compiles_per_column_and_matches_native(handle_unknown: str) -> None:
    x, y = _frame(800, 0)
    model = _by_name(handle_unknown).fit(x, y)
    compiled, choice, native = compile_with_native(model, SCHEMA, x)
    assert isinstance(compiled, OnnxColumnsPredictor), choice.reason
    assert choice.engine is Engine.ONNX
    assert choice.reason.startswith("compiled to ONNX; verified on 256 rows, max |Δ| ")
    assert "; and on 7 rows with NaN, max |Δ| " in choice.reason  # a, b, c: 2 rows each + 1
    assert choice.reason.endswith(  # the passthrough column p reaches LogisticRegression as is
        "; NaN in 'p' goes to the native model, which raises on it "
        "(ValueError: Input X contains NaN.)"
    )
    assert choice.max_abs_diff is not None and choice.max_abs_diff < 1e-5
    inputs = [(i.name, i.type) for i in compiled.session.get_inputs()]
    assert inputs == [(c, "tensor(float)") for c in SCALED] + [
        ("k", "tensor(int64)"),
        ("p", "tensor(float)"),
    ]
    rows = _fresh_rows()
    assert_same_prediction(compiled.predict(rows), native.predict(rows))
    for i in range(4):  # one row at a time: all-NaN floats, unseen codes 0 and 9
        assert_same_prediction(compiled.predict(rows[i : i + 1]), native.predict(rows[i : i + 1]))
    rows[5, 4] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):  # as the native model does
        compiled.predict(rows[:8])


class _Recorder:
    """A predictor that records the batches it gets and lets ``inner`` predict them."""

    def __init__(self, inner: SklearnPredictor) -> None:
        self.inner = inner
        self.batches: list[Batch] = []

    def predict(self, batch: Batch) -> Prediction:
        self.batches.append(batch)
        return self.inner.predict(batch)


def test_nan_in_the_integer_column_goes_to_the_native_predictor() -> None:
    x, y = _frame(800, 0)
    model = _by_name().fit(x, y)
    compiled, choice, native = compile_with_native(model, SCHEMA, x)
    assert isinstance(compiled, OnnxColumnsPredictor), choice.reason
    recorder = _Recorder(native)
    predictor = OnnxColumnsPredictor(
        compiled.session,
        compiled.feeds,
        fallback=recorder,
        task=native.task,
        classes=native.classes,
        label_dtype=np.asarray(native.classes).dtype,
        has_proba=True,
    )
    rows = _fresh_rows()[:5]
    assert_same_prediction(predictor.predict(rows), native.predict(rows))
    assert recorder.batches == []  # NaN in float columns: ONNX ran it
    rows[3, 3] = np.nan  # k is int64 in ONNX, which cannot hold NaN
    assert_same_prediction(predictor.predict(rows), native.predict(rows))
    assert len(recorder.batches) == 1


def test_estimator_treating_nan_differently_serves_natively_with_the_reason() -> None:
    x, y = _frame(600, 0)
    forest = RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0)
    columns = ColumnTransformer([("keep", "passthrough", [*SCALED, "k", "p"])])
    model = make_pipeline(columns, forest).fit(x, y)  # scikit-learn's trees route NaN; ONNX not
    compiled, choice, _ = compile_with_native(model, SCHEMA, x.dropna())  # an example without NaN
    assert compiled is None
    assert choice.engine is Engine.SKLEARN
    assert choice.reason.startswith(
        "verification failed on rows with NaN (9 rows with NaN in one or all nullable "
        "columns): max |Δ| "
    )
    assert choice.reason.endswith("(an imputer before the estimator avoids it); serving natively")
    assert choice.max_abs_diff is not None and choice.max_abs_diff > 1e-2


def test_native_model_raising_on_nan_keeps_onnx_and_says_so() -> None:
    x, y = _frame(600, 0, holes=0.0)
    columns = ColumnTransformer([("scale", StandardScaler(), [*SCALED, "p"])])
    model = make_pipeline(columns, LogisticRegression(max_iter=500)).fit(x, y)
    compiled, choice, _ = compile_with_native(model, SCHEMA, x)
    assert isinstance(compiled, OnnxColumnsPredictor), choice.reason
    assert "rows with NaN" not in choice.reason  # no column's NaN could be compared
    assert choice.reason.endswith(
        "; NaN in 'a', 'b', 'c', 'p' goes to the native model, which raises on it "
        "(ValueError: Input X contains NaN.)"
    )


def test_nan_rows_cover_each_nullable_float_column_then_all_of_them() -> None:
    schema = InputSchema(
        [
            ColumnSpec("x", "float"),
            ColumnSpec("k", "int", required=False),
            ColumnSpec("y", "float", required=False),
            ColumnSpec("flag", "bool"),
        ]
    )
    assert nullable_columns(schema) == [2]  # policy reject: only y may be NaN; ints go native
    assert nullable_columns(InputSchema(list(schema.columns), nan_policy="allow")) == [0, 2, 3]
    sample = np.arange(12.0).reshape(3, 4)
    rows = rows_with_missing(sample, [0, 2, 3])
    assert rows.shape == (7, 4)  # two rows per column, then one with all of them
    assert np.isnan(rows).sum(axis=0).tolist() == [3, 0, 3, 3]
    assert np.isnan(rows[-1]).tolist() == [True, False, True, True]
    np.testing.assert_array_equal(rows[:3, 1], sample[:, 1])  # the sample's rows, recycled


# -- which path --------------------------------------------------------------------------------
_NESTED = make_pipeline(  # a pipeline in a pipeline, a ColumnTransformer in a FeatureUnion
    make_pipeline(FeatureUnion([("ct", ColumnTransformer([("a", StandardScaler(), ["a"])]))])),
    LogisticRegression(),
)
_BY_INDEX = make_pipeline(
    ColumnTransformer([("s", StandardScaler(), [0, 1])]), LogisticRegression()
)


@pytest.mark.parametrize(
    ("model", "by_name"),
    [
        (_by_name(), True),
        (_NESTED, True),
        (_BY_INDEX, False),
        (make_pipeline(StandardScaler(), LogisticRegression()), False),
    ],
)
def test_by_name_selection_is_found_at_any_depth(model: Pipeline, by_name: bool) -> None:
    x, y = _frame(200, 1, holes=0.0)
    fitted = model.fit(x if by_name else x.to_numpy(), y)
    assert selects_by_name(fitted) is by_name


@pytest.mark.parametrize("name", ["logreg", "hgb"])
def test_single_tensor_models_keep_the_onnx_predictor(zoo: Zoo, name: str) -> None:
    schema = InputSchema([ColumnSpec(f, "float") for f in FEATURES])
    native = SklearnPredictor(zoo.model(name), columns=FEATURES, threads=1)
    sample = verification_batch(zoo.X.head(5).to_numpy(), schema, SETTINGS.onnx_verify_rows)
    compiled, choice = compile_onnx(
        zoo.model(name), native, schema=schema, settings=SETTINGS, sample=sample
    )
    assert type(compiled) is OnnxPredictor, choice.reason
    assert [i.name for i in compiled.session.get_inputs()] == ["input"]


# synthetic_batch's nanstd of the all-NaN example column warns (harmless: its scale becomes 1)
@pytest.mark.filterwarnings("ignore:Degrees of freedom <= 0:RuntimeWarning")
def test_imputer_indicators_and_dropped_empty_columns_convert_on_the_single_tensor_path() -> None:
    # stock skl2onnx 1.20 ignores add_indicator ("Mismatch between expected shape") and keeps
    # columns that scikit-learn drops because they were all missing in training
    x, y = _frame(600, 0)
    x["empty"] = np.nan
    x = x[[*SCALED, "empty", "p"]]
    model = make_pipeline(
        SimpleImputer(add_indicator=True), StandardScaler(), LogisticRegression(max_iter=500)
    ).fit(x.to_numpy(), y)
    schema = InputSchema([ColumnSpec(c, "float") for c in x.columns], nan_policy="allow")
    compiled, choice, native = compile_with_native(model, schema, x)
    assert type(compiled) is OnnxPredictor, choice.reason
    rows = schema.from_frame(_frame(200, 3, holes=0.3)[0].assign(empty=1.0)[list(x.columns)])
    assert_same_prediction(compiled.predict(rows), native.predict(rows))


# -- through the loader --------------------------------------------------------------------------
def _register(uri: str, artifacts: Path, model: Pipeline, x: pd.DataFrame) -> str:
    from mlflow.models import infer_signature

    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment("by-name", artifact_location=artifacts.as_uri())
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                serialization_format="cloudpickle",
                signature=infer_signature(x, model.predict(x)),
                input_example=x.head(5),
                registered_model_name="by-name",
                pip_requirements=["scikit-learn"],
            )
    finally:
        mlflow.set_tracking_uri(before)
    version = str(info.registered_model_version)
    client.set_model_version_tag("by-name", version, NAN_POLICY_TAG, "allow")
    return version


def test_by_name_model_loads_from_a_registry_and_serves_through_onnx(tmp_path: Path) -> None:
    x, y = _frame(800, 0)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    version = _register(uri, tmp_path / "artifacts", _by_name().fit(x, y), x)
    client = mlflow.MlflowClient(uri)
    tags = client.get_model_version("by-name", version).tags
    path = download_version(uri, "by-name", version, tmp_path / "model")
    loaded = load_model(path, name="by-name", version=version, settings=SETTINGS, tags=tags)
    assert loaded.schema.numeric and loaded.schema.nan_policy == "allow"
    assert isinstance(loaded.predictor, OnnxColumnsPredictor), loaded.engine.reason
    assert loaded.engine.engine is Engine.ONNX
    assert loaded.engine.details["native_engine"] == "sklearn"
    records = [
        {"a": None, "b": 48.0, "c": None, "k": 3, "p": 0.5},
        {"a": 1.5, "b": None, "c": 420.0, "k": 9, "p": -1.0},  # code 9 was never seen
        {"a": -0.2, "b": 51.0, "c": 610.0, "k": 6, "p": 0.0},  # 6 is infrequent
    ]
    batch = loaded.schema.from_records(records)
    assert_same_prediction(loaded.predict(batch), loaded.native.predict(batch))
