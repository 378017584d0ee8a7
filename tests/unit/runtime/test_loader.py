"""load_model on real MLflow model directories: engine choice, outputs, errors, accounting."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sibyl.errors import ModelLoadError
from sibyl.runtime import (
    ColumnSpec,
    Engine,
    InputSchema,
    LoadedModel,
    Predictor,
    Task,
    choose_flavor,
    load_model,
)
from sibyl.settings import RuntimeSettings
from tests.toys import ClassifierToy
from tests.unit.runtime.conftest import Zoo

SETTINGS = RuntimeSettings()


def _load(path: Path, settings: RuntimeSettings = SETTINGS, nan_policy: str | None = None
          ) -> LoadedModel:
    tags = {} if nan_policy is None else {"sibyl.nan_policy": nan_policy}
    return load_model(path, name="m", version="3", settings=settings, tags=tags)


@pytest.mark.parametrize(("name", "flavor", "task", "native_engine"), [
    ("logreg", "sklearn", Task.CLASSIFIER, Engine.SKLEARN),
    ("hgb", "sklearn", Task.CLASSIFIER, Engine.SKLEARN),
    ("hgb_reg", "sklearn", Task.REGRESSOR, Engine.SKLEARN),
    ("forest", "sklearn", Task.CLASSIFIER, Engine.SKLEARN),
    ("xgb", "xgboost", Task.CLASSIFIER, Engine.XGBOOST),
    ("lgbm", "lightgbm", Task.CLASSIFIER, Engine.LIGHTGBM),
    ("xgb_booster", "xgboost", Task.CLASSIFIER, Engine.XGBOOST),
    ("lgb_booster", "lightgbm", Task.REGRESSOR, Engine.LIGHTGBM),
])
def test_tree_and_linear_models_serve_through_onnx(zoo: Zoo, name: str, flavor: str, task: Task,
                                                   native_engine: Engine) -> None:
    loaded = _load(zoo.path(name))
    assert (loaded.flavor, loaded.task, loaded.engine.engine) == (flavor, task, Engine.ONNX)
    assert loaded.engine.details["native_engine"] == native_engine.value
    assert getattr(loaded.native, "engine", None) is native_engine
    rows = zoo.fresh.to_numpy()
    got, want = loaded.predict(rows), loaded.native.predict(rows)
    assert got.classes == want.classes == loaded.classes
    if task is Task.CLASSIFIER:
        np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-5)
    else:
        np.testing.assert_allclose(got.predictions, want.predictions, rtol=1e-3, atol=1e-4)


def test_loaded_model_carries_schema_example_and_accounting(zoo: Zoo) -> None:
    loaded = _load(zoo.path("hgb"))
    assert (loaded.name, loaded.version) == ("m", "3")
    assert loaded.schema.numeric
    assert loaded.schema.names[0] == "f0"
    assert isinstance(loaded.input_example, np.ndarray)
    assert loaded.input_example.shape == (5, 20)
    assert loaded.classes == (0, 1, 2)
    assert loaded.output_names == ("predictions",)
    assert loaded.memory_bytes > 0
    assert loaded.load_seconds > 0
    assert loaded.signature_text is not None
    assert "'f0': double" in loaded.signature_text
    assert isinstance(loaded, Predictor)


def test_onnx_disabled_serves_natively(zoo: Zoo) -> None:
    loaded = _load(zoo.path("hgb"), RuntimeSettings(onnx=False))
    assert loaded.engine.engine is Engine.SKLEARN
    assert loaded.engine.reason == "ONNX disabled by settings"
    assert loaded.predictor is loaded.native


def test_verification_failure_serves_natively(zoo: Zoo) -> None:
    loaded = _load(zoo.path("logreg"), RuntimeSettings(onnx_atol=0.0, onnx_rtol=0.0))
    assert loaded.engine.engine is Engine.SKLEARN
    assert loaded.predictor is loaded.native
    assert loaded.engine.reason.startswith("verification failed: max |Δ|")


def test_unconvertible_estimator_serves_natively_with_the_reason(zoo: Zoo) -> None:
    loaded = _load(zoo.path("custom"))
    assert loaded.engine.engine is Engine.SKLEARN
    assert loaded.engine.reason.startswith("skl2onnx cannot convert ThresholdClassifier")
    assert loaded.predict(zoo.fresh.to_numpy()[:3]).classes == (0, 1)


def test_mixed_schema_serves_through_onnx_on_frames(zoo: Zoo) -> None:
    loaded = _load(zoo.path("mixed"))
    assert loaded.engine.engine is Engine.ONNX, loaded.engine.reason
    batch = loaded.schema.from_records([{"f0": 1.0, "f1": 2.0, "f2": 0.0, "city": "paris"},
                                        {"f0": -1.0, "f1": 0.5, "f2": 3.0, "city": "oslo"}])
    got, want = loaded.predict(batch), loaded.native.predict(batch)
    assert got.predictions.tolist() == want.predictions.tolist()
    np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-5)


def test_pyfunc_model_gets_signature_dtypes_and_returns_row_dicts(zoo: Zoo) -> None:
    loaded = _load(zoo.path("pyfunc"))
    assert (loaded.flavor, loaded.task, loaded.engine.engine) == (
        "python_function", Task.OTHER, Engine.PYFUNC)
    assert loaded.output_names == ("double", "n_plus")
    batch = loaded.schema.from_records([{"x": 1.5, "n": 4}])
    assert isinstance(batch, np.ndarray)  # numeric schema: float64 even for the 'long' column
    assert loaded.predict(batch).predictions.tolist() == [{"double": 3.0, "n_plus": 5}]


def test_pyfunc_with_a_tensor_signature_gets_the_tensor_dtype(zoo: Zoo) -> None:
    loaded = _load(zoo.path("pyfunc_tensor"))
    rows = zoo.fresh.to_numpy()[:3]
    assert loaded.schema.names[:2] == ("input_0", "input_1")
    np.testing.assert_allclose(loaded.predict(rows).predictions, rows.sum(axis=1), rtol=1e-5)


def test_nan_policy_comes_from_the_version_tag(zoo: Zoo) -> None:
    assert _load(zoo.path("forest")).schema.nan_policy == "reject"
    assert _load(zoo.path("forest"), nan_policy="allow").schema.nan_policy == "allow"
    with pytest.raises(ModelLoadError, match=r"set the version tag 'sibyl\.nan_policy'"):
        _load(zoo.path("forest"), nan_policy="sometimes")


def test_missing_directory_is_a_load_error_naming_the_model(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError) as info:
        _load(tmp_path / "nowhere")
    message = info.value.message
    assert message.startswith("Model 'm' version 3 could not be loaded: reading its MLmodel file")
    assert "download the artifacts again" in message


def test_corrupt_pickle_is_a_load_error(copy_model: Callable[[str], Path]) -> None:
    path = copy_model("forest")
    (path / "model.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ModelLoadError, match=r"loading the sklearn model failed \(.*\); check"):
        _load(path)


def test_model_failing_its_own_example_is_a_warm_up_error(zoo: Zoo) -> None:
    with pytest.raises(ModelLoadError, match=r"warming it up on 8 rows failed .*always fails"):
        _load(zoo.path("failing"))


def test_flavor_preference_and_unknown_flavors() -> None:
    assert choose_flavor({"python_function": {}, "sklearn": {}}) == "sklearn"
    assert choose_flavor({"python_function": {}, "lightgbm": {}}) == "lightgbm"
    with pytest.raises(ValueError, match="none of"):
        choose_flavor({"onnx": {}})


def test_plain_python_predictor_is_wrapped_as_python_engine() -> None:
    schema = InputSchema([ColumnSpec("a", "float"), ColumnSpec("b", "float")])
    loaded = LoadedModel.from_predictor("toy", "1", ClassifierToy(), schema,
                                        task=Task.CLASSIFIER, classes=(0, 1))
    assert loaded.engine.engine is Engine.PYTHON
    assert loaded.native is loaded.predictor
    assert loaded.predict(schema.from_rows([[1.0, 2.0]])).predictions.tolist() == [1]
