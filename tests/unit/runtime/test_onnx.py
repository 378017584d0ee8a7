"""ONNX compilation and verification against the native predictor, on real models."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from sibyl.runtime import (
    BoosterPredictor,
    ColumnSpec,
    Engine,
    InputSchema,
    OnnxPredictor,
    Prediction,
    SklearnPredictor,
    Task,
    compile_onnx,
    onnx_precheck,
    synthetic_batch,
)
from sibyl.runtime._onnx import verify
from sibyl.runtime.loader import verification_batch
from sibyl.settings import RuntimeSettings
from tests.unit.runtime.conftest import FEATURES, Zoo

SCHEMA = InputSchema([ColumnSpec(f, "float") for f in FEATURES])
SETTINGS = RuntimeSettings()


def _native(zoo: Zoo, name: str) -> SklearnPredictor | BoosterPredictor:
    model = zoo.model(name)
    if type(model).__name__ == "Booster":
        return BoosterPredictor(model, threads=1)
    return SklearnPredictor(model, columns=FEATURES, threads=1)


def _compile(zoo: Zoo, name: str, settings: RuntimeSettings = SETTINGS
             ) -> tuple[OnnxPredictor | None, object]:
    sample = verification_batch(zoo.X.head(5).to_numpy(), SCHEMA, settings.onnx_verify_rows)
    return compile_onnx(zoo.model(name), _native(zoo, name), schema=SCHEMA, settings=settings,
                        sample=sample)


@pytest.mark.parametrize("name", ["logreg", "hgb", "hgb_reg", "forest", "xgb", "lgbm",
                                  "xgb_booster", "lgb_booster"])
def test_converts_verifies_and_matches_native_on_fresh_rows(zoo: Zoo, name: str) -> None:
    compiled, choice = _compile(zoo, name)
    assert compiled is not None, choice.reason
    assert choice.engine is Engine.ONNX
    assert choice.reason.startswith("compiled to ONNX; verified on 256 rows, max |Δ| ")
    assert choice.max_abs_diff is not None
    assert choice.max_abs_diff < 1e-4
    rows = zoo.fresh.to_numpy()
    want, got = _native(zoo, name).predict(rows), compiled.predict(rows)
    assert got.classes == want.classes
    assert got.predictions.dtype == want.predictions.dtype
    if want.probabilities is None:  # regressors
        np.testing.assert_allclose(got.predictions, want.predictions, rtol=1e-3, atol=1e-4)
    else:
        np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-5)
        assert (got.predictions == want.predictions).mean() > 0.99


def test_string_classes_come_back_as_the_native_labels(zoo: Zoo) -> None:
    compiled, _ = _compile(zoo, "logreg")
    assert compiled is not None
    pred = compiled.predict(zoo.fresh.to_numpy()[:4])
    assert set(pred.predictions) <= {"no", "yes"}
    assert pred.predictions.dtype == object


@pytest.mark.parametrize(("name", "has_proba"), [("logreg", True), ("logreg", False),
                                               ("hgb_reg", False)])
def test_predict_answers_as_decode_does(zoo: Zoo, name: str, has_proba: bool) -> None:
    # predict inlines decode (hot path) and the per-column subclasses call decode: keep in step
    compiled, _ = _compile(zoo, name)
    assert compiled is not None
    rows = zoo.fresh.to_numpy()[:50]
    session = compiled.session
    predictor = OnnxPredictor(session, task=compiled.task, classes=compiled.classes,
                              label_dtype=compiled.predict(rows).predictions.dtype,
                              has_proba=has_proba)
    output = session.get_outputs()[1 if has_proba else 0].name
    fetched = session.run([output], {session.get_inputs()[0].name: rows.astype(np.float32)})[0]
    got, want = predictor.predict(rows), predictor.decode(fetched)
    assert got.classes == want.classes
    assert got.predictions.dtype == want.predictions.dtype
    assert got.predictions.tolist() == want.predictions.tolist()
    if has_proba:
        np.testing.assert_array_equal(got.probabilities, want.probabilities)
    else:
        assert got.probabilities is None and want.probabilities is None


def test_hist_gradient_boosting_converts_despite_the_skl2onnx_boolean_bug(zoo: Zoo) -> None:
    compiled, choice = _compile(zoo, "hgb")  # stock skl2onnx 1.20 raises "got a boolean"
    assert compiled is not None
    assert choice.max_abs_diff is not None
    assert choice.max_abs_diff < 1e-6


def test_unknown_estimator_stays_native_with_the_converter_error(zoo: Zoo) -> None:
    compiled, choice = _compile(zoo, "custom")
    assert compiled is None
    assert choice.engine is Engine.SKLEARN
    assert choice.reason.startswith("skl2onnx cannot convert ThresholdClassifier: ")


def test_zero_tolerance_fails_verification_and_stays_native(zoo: Zoo) -> None:
    strict = RuntimeSettings(onnx_atol=0.0, onnx_rtol=0.0)
    compiled, choice = _compile(zoo, "hgb", strict)
    assert compiled is None
    assert choice.engine is Engine.SKLEARN
    assert choice.reason.startswith("verification failed: max |Δ| ")
    assert "> tolerance (atol 0 + rtol 0·|native|)" in choice.reason
    assert choice.max_abs_diff is not None
    assert choice.max_abs_diff > 0


def test_missing_onnx_extra_names_the_pip_command(zoo: Zoo,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    compiled, choice = _compile(zoo, "forest")
    assert compiled is None
    assert choice.engine is Engine.SKLEARN
    assert choice.reason.startswith("onnx extra not installed: pip install 'sibyl[onnx]'")


def test_session_uses_the_configured_threads(zoo: Zoo) -> None:
    compiled, _ = _compile(zoo, "forest", RuntimeSettings(inference_threads=2))
    assert compiled is not None
    options = compiled.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)


@pytest.mark.parametrize(("settings", "schema", "flavor", "task", "reason"), [
    (RuntimeSettings(onnx=False), SCHEMA, "sklearn", Task.CLASSIFIER, "ONNX disabled by settings"),
    (SETTINGS, SCHEMA, "python_function", Task.OTHER, "no ONNX converter for the python_function"),
    (SETTINGS, InputSchema([ColumnSpec("s", "str")]), "xgboost", Task.CLASSIFIER,
     "schema has non-numeric columns"),  # text schemas: see test_onnx_text.py
    (SETTINGS, InputSchema([], typed=False), "sklearn", Task.CLASSIFIER, "no input signature"),
    (SETTINGS, SCHEMA, "sklearn", Task.OTHER, "only used for classifiers and regressors"),
    (SETTINGS, SCHEMA, "xgboost", Task.REGRESSOR, None),
])
def test_precheck_says_why_onnx_is_not_tried(settings: RuntimeSettings, schema: InputSchema,
                                             flavor: str, task: Task, reason: str | None) -> None:
    got = onnx_precheck(settings, schema, flavor, task)
    assert got == reason if reason is None else reason in (got or "")


def test_verification_rows_are_the_example_then_synthetic_rows() -> None:
    schema = InputSchema([ColumnSpec("x", "float")])
    example = np.array([[1.0], [2.0], [3.0]])
    rows = verification_batch(example, schema, 10)
    assert rows.shape == (10, 1)
    np.testing.assert_array_equal(rows[:3], example)
    assert verification_batch(example, schema, 2) is example
    assert verification_batch(None, schema, 4).shape == (4, 1)


def test_synthetic_rows_are_seeded_scaled_and_typed() -> None:
    schema = InputSchema([ColumnSpec("x", "float"), ColumnSpec("k", "int"),
                          ColumnSpec("flag", "bool"), ColumnSpec("const", "float")])
    example = np.array([[0.0, 1.0, 0.0, 5.0], [100.0, 3.0, 1.0, 5.0]])
    rows = synthetic_batch(example, schema, 2000)
    assert rows.shape == (2000, 4)
    assert rows.dtype == np.float64
    np.testing.assert_array_equal(rows, synthetic_batch(example, schema, 2000))
    noise = rows - example[np.arange(2000) % 2]
    assert 45 < noise[:, 0].std() < 55  # the example's std of column x is 50
    assert np.all(rows[:, 1] == np.round(rows[:, 1]))
    assert set(np.unique(rows[:, 2])) <= {0.0, 1.0}
    assert 0.9 < noise[:, 3].std() < 1.1  # a constant column gets unit noise


def _clf(probs: list[list[float]], labels: list[int]) -> Prediction:
    return Prediction(np.array(labels), np.array(probs), (0, 1))


def test_labels_may_differ_only_on_near_ties() -> None:
    native = _clf([[0.50001, 0.49999], [0.9, 0.1]], [0, 0])
    tie_flipped = _clf([[0.49999, 0.50001], [0.9, 0.1]], [1, 0])
    assert verify(native, tie_flipped, atol=1e-4, rtol=0).ok
    clear_flip = _clf([[0.50001, 0.49999], [0.9, 0.1]], [0, 1])
    check = verify(native, clear_flip, atol=1e-4, rtol=0)
    assert not check.ok
    assert check.problem is not None
    assert "labels differ on 1 of 2" in check.problem


def test_nan_on_both_sides_agrees_and_on_one_side_fails() -> None:
    both = Prediction(np.array([np.nan, 1.0]))
    assert verify(both, Prediction(np.array([np.nan, 1.0])), atol=1e-4, rtol=0).ok
    assert not verify(both, Prediction(np.array([0.0, 1.0])), atol=1e-4, rtol=0).ok
    assert not verify(Prediction(np.array([0.0, 1.0])), both, atol=1e-4, rtol=0).ok
