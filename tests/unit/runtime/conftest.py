"""Real models, fitted once per session on small data and saved with MLflow to a tmp dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow.artifacts
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from sibyl.runtime import (
    InputSchema,
    OnnxPredictor,
    Prediction,
    SklearnPredictor,
    compile_onnx,
)
from sibyl.runtime.loader import verification_batch
from sibyl.runtime.types import EngineChoice
from sibyl.settings import RuntimeSettings

FEATURES = [f"f{i}" for i in range(20)]


class TwoColumnModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """pyfunc returning two columns; insists on the signature's int64 column."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        assert model_input["n"].dtype == np.int64
        return pd.DataFrame({"double": model_input["x"] * 2, "n_plus": model_input["n"] + 1})


class RowSumModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """pyfunc with a float32 tensor signature (pyfunc refuses float64 for it)."""

    def predict(self, context: Any, model_input: np.ndarray, params: Any = None) -> Any:
        assert model_input.dtype == np.float32
        return model_input.sum(axis=1)


class FailingModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """pyfunc that loads fine and raises on every prediction."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        raise RuntimeError("this model always fails")


class ThresholdClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A custom estimator: no ONNX converter knows it; ``predict`` is not argmax of proba."""

    def __init__(self, threshold: float = 0.8) -> None:
        self.threshold = threshold

    def fit(self, x: Any, y: Any) -> ThresholdClassifier:
        self.classes_ = np.unique(y)
        self.n_features_in_ = np.asarray(x).shape[1]
        return self

    def predict_proba(self, x: Any) -> np.ndarray:
        p1 = 1 / (1 + np.exp(-np.asarray(x, dtype=float)[:, 0]))
        return np.column_stack([1 - p1, p1])

    def predict(self, x: Any) -> np.ndarray:
        return self.classes_[(self.predict_proba(x)[:, 1] > self.threshold).astype(int)]


def _frame(n: int, n_classes: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    x, y = make_classification(n_samples=n, n_features=20, n_informative=8,
                               n_classes=n_classes, random_state=seed)
    return pd.DataFrame(x, columns=FEATURES), y


def _save_sklearn(model: Any, path: Path, x: pd.DataFrame, y: Any) -> None:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    mlflow.sklearn.save_model(model, path, serialization_format="cloudpickle",
                              signature=infer_signature(x, y), input_example=x.head(5),
                              pip_requirements=["scikit-learn"])  # skips 5 s of inference


class Zoo:
    """Fitted models (``zoo.model(name)``) and their saved MLflow directories (``zoo.path``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._models: dict[str, Any] = {}
        self._paths: dict[str, Path] = {}
        x3, y3 = _frame(600, 3)
        self.X, self.y3, self.y2 = x3, y3, (x3["f0"] + x3["f1"] > 0).astype(int).to_numpy()
        self.fresh = _frame(300, 3, seed=1)[0]  # rows no model was fitted or verified on

    def model(self, name: str) -> Any:
        if name not in self._models:
            self.path(name)
        return self._models[name]

    def path(self, name: str) -> Path:
        if name not in self._paths:
            dest = self.root / name
            self._models[name] = getattr(self, f"_{name}")(dest)
            self._paths[name] = dest
        return self._paths[name]

    # -- one method per model: fit, save to ``dest``, return the fitted object ----------------
    def _logreg(self, dest: Path) -> Any:
        y = np.where(self.y2 == 1, "yes", "no").astype(object)
        m = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(self.X, y)
        _save_sklearn(m, dest, self.X, y)
        return m

    def _hgb(self, dest: Path) -> Any:
        m = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(self.X, self.y3)
        _save_sklearn(m, dest, self.X, self.y3)
        return m

    def _hgb_reg(self, dest: Path) -> Any:
        target = self.X["f0"].to_numpy() * 3 + self.y3
        m = HistGradientBoostingRegressor(max_iter=50, random_state=0).fit(self.X, target)
        _save_sklearn(m, dest, self.X, target)
        return m

    def _forest(self, dest: Path) -> Any:
        m = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0)
        m.fit(self.X, self.y3)
        _save_sklearn(m, dest, self.X, self.y3)
        return m

    def _custom(self, dest: Path) -> Any:
        m = ThresholdClassifier().fit(self.X, self.y2)
        _save_sklearn(m, dest, self.X, self.y2)
        return m

    def _mixed(self, dest: Path) -> Any:
        x = self.X.iloc[:, :3].assign(city=np.where(self.y2 == 1, "paris", "oslo"))
        pre = ColumnTransformer([("city", OneHotEncoder(), ["city"])], remainder="passthrough")
        m = make_pipeline(pre, LogisticRegression(max_iter=500)).fit(x, self.y2)
        _save_sklearn(m, dest, x, self.y2)
        return m

    def _xgb(self, dest: Path) -> Any:
        import mlflow.xgboost
        import xgboost as xgb
        from mlflow.models import infer_signature

        m = xgb.XGBClassifier(n_estimators=30, max_depth=3).fit(self.X, self.y3)
        mlflow.xgboost.save_model(m, dest, signature=infer_signature(self.X, self.y3),
                                  input_example=self.X.head(5), pip_requirements=["xgboost"])
        return m

    def _lgbm(self, dest: Path) -> Any:
        import lightgbm as lgb
        import mlflow.lightgbm
        from mlflow.models import infer_signature

        m = lgb.LGBMClassifier(n_estimators=30, verbose=-1).fit(self.X, self.y3)
        mlflow.lightgbm.save_model(m, dest, signature=infer_signature(self.X, self.y3),
                                   input_example=self.X.head(5), pip_requirements=["lightgbm"])
        return m

    def _xgb_booster(self, dest: Path) -> Any:
        import mlflow.xgboost
        import xgboost as xgb
        from mlflow.models import infer_signature

        data = xgb.DMatrix(self.X, label=self.y2)
        m = xgb.train({"objective": "binary:logistic", "max_depth": 3}, data, 20)
        mlflow.xgboost.save_model(m, dest, signature=infer_signature(self.X, self.y2),
                                  input_example=self.X.head(5), pip_requirements=["xgboost"])
        return m

    def _lgb_booster(self, dest: Path) -> Any:
        import lightgbm as lgb
        import mlflow.lightgbm
        from mlflow.models import infer_signature

        target = self.X["f0"].to_numpy() * 3 + self.y3
        m = lgb.train({"objective": "regression", "verbose": -1}, lgb.Dataset(self.X, target), 30)
        mlflow.lightgbm.save_model(m, dest, signature=infer_signature(self.X, target),
                                   input_example=self.X.head(5), pip_requirements=["lightgbm"])
        return m

    def _pyfunc(self, dest: Path) -> Any:
        return _save_pyfunc(TwoColumnModel(), dest)

    def _pyfunc_tensor(self, dest: Path) -> Any:
        from mlflow.models import infer_signature

        x = self.X.to_numpy(dtype=np.float32)[:5]
        mlflow.pyfunc.save_model(dest, python_model=RowSumModel(), input_example=x,
                                 signature=infer_signature(x, x.sum(axis=1)),
                                 pip_requirements=["mlflow"])
        return None

    def _failing(self, dest: Path) -> Any:
        return _save_pyfunc(FailingModel(), dest)


def compile_with_native(
    model: Any, schema: InputSchema, x: pd.DataFrame, settings: RuntimeSettings | None = None
) -> tuple[OnnxPredictor | None, EngineChoice, SklearnPredictor]:
    """``compile_onnx`` of a fitted scikit-learn ``model`` as the loader runs it (verified on
    ``x``'s first 5 rows plus synthetic ones), and the native predictor it was checked against."""
    settings = settings or RuntimeSettings()
    native = SklearnPredictor(model, columns=schema.names, threads=1)
    example = schema.from_frame(x.head(5))
    sample = verification_batch(example, schema, settings.onnx_verify_rows)
    compiled, choice = compile_onnx(model, native, schema=schema, settings=settings, sample=sample)
    return compiled, choice, native


def assert_same_prediction(got: Prediction, want: Prediction) -> None:
    """Same classes, label dtype and labels; probabilities within 1e-5."""
    assert got.classes == want.classes
    assert got.predictions.dtype == want.predictions.dtype
    assert got.predictions.tolist() == want.predictions.tolist()
    np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-5, rtol=0)


def download_version(uri: str, name: str, version: str, dest: Path) -> Path:
    """Download registered model ``name`` / ``version`` from the registry at ``uri`` to ``dest``
    (the global tracking URI is restored afterwards)."""
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        path = mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=str(dest))
    finally:
        mlflow.set_tracking_uri(before)
    return Path(path)


def _save_pyfunc(model: Any, dest: Path) -> Any:
    from mlflow.models import infer_signature

    x = pd.DataFrame({"x": [0.5, 1.5, -2.0], "n": [1, 2, 3]})  # n is a 'long' column
    out = pd.DataFrame({"double": [1.0, 3.0, -4.0], "n_plus": [2, 3, 4]})
    mlflow.pyfunc.save_model(dest, python_model=model, signature=infer_signature(x, out),
                             input_example=x, pip_requirements=["mlflow"])
    return model


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> Any:
    """Pin OpenMP/BLAS like the batcher's worker thread does (unpinned HGB is erratic)."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    return Zoo(tmp_path_factory.mktemp("models"))


@pytest.fixture
def copy_model(tmp_path: Path, zoo: Zoo) -> Callable[[str], Path]:
    """A private copy of a saved model directory (for tests that damage it)."""
    import shutil

    def copy(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(zoo.path(name), dest)
        return dest

    return copy

