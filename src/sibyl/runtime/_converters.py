"""skl2onnx converters sibyl registers: a fix for HistGradientBoosting and onnxmltools' tree
converters for xgboost / lightgbm sklearn-API models (so they convert inside pipelines)."""

from __future__ import annotations

import sys
import threading
from typing import Any

_REGISTER_LOCK = threading.Lock()
_REGISTERED: set[str] = set()


def register_converters() -> None:
    """Register sibyl's skl2onnx converters (idempotent, through skl2onnx's public API).

    * HistGradientBoosting: skl2onnx 1.20's stock converter passes numpy / Python booleans as
      ``nodes_missing_value_tracks_true``, which onnx ≥ 1.16 rejects ("Expected an int, got a
      boolean"). We register the stock converter again behind a container proxy that casts that
      one attribute to int; harmless once skl2onnx fixes it.
    * XGBClassifier / XGBRegressor / LGBMClassifier / LGBMRegressor (when their library is
      already imported, i.e. a model uses it): onnxmltools' converters, so they also convert
      inside sklearn pipelines.
    """
    with _REGISTER_LOCK:
        for library, register in (
            ("sklearn", _register_hgb),
            ("xgboost", _register_xgboost),
            ("lightgbm", _register_lightgbm),
        ):
            if library not in _REGISTERED and library in sys.modules:
                register()
                _REGISTERED.add(library)


class _IntTracksContainer:
    """Delegates to skl2onnx's container; casts ``nodes_missing_value_tracks_true`` to int."""

    def __init__(self, container: Any) -> None:
        self._container = container

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(self, *args: Any, **attrs: Any) -> Any:
        tracks = attrs.get("nodes_missing_value_tracks_true")
        if tracks is not None:
            attrs["nodes_missing_value_tracks_true"] = [int(v) for v in tracks]
        return self._container.add_node(*args, **attrs)


def _register_hgb() -> None:
    from skl2onnx.operator_converters.random_forest import (
        convert_sklearn_random_forest_classifier,
        convert_sklearn_random_forest_regressor_converter,
    )
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    _register(
        HistGradientBoostingClassifier,
        "SibylHistGradientBoostingClassifier",
        _with_int_tracks(convert_sklearn_random_forest_classifier),
        {
            "zipmap": [True, False, "columns"],
            "raw_scores": [True, False],
            "output_class_labels": [False, True],
            "nocl": [True, False],
        },
    )
    _register(
        HistGradientBoostingRegressor,
        "SibylHistGradientBoostingRegressor",
        _with_int_tracks(convert_sklearn_random_forest_regressor_converter),
        {"raw_scores": [True, False]},
    )


def _with_int_tracks(stock: Any) -> Any:
    def convert(scope: Any, operator: Any, container: Any) -> Any:  # skl2onnx checks the names
        return stock(scope, operator, _IntTracksContainer(container))

    return convert


def _register_xgboost() -> None:
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from xgboost import XGBClassifier, XGBRegressor

    _register(XGBClassifier, "XGBoostXGBClassifier", convert_xgboost, _TREE_CLASSIFIER_OPTIONS)
    _register(XGBRegressor, "XGBoostXGBRegressor", convert_xgboost)


def _register_lightgbm() -> None:
    from lightgbm import LGBMClassifier, LGBMRegressor
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

    _register(LGBMClassifier, "LightGbmLGBMClassifier", convert_lightgbm, _TREE_CLASSIFIER_OPTIONS)
    _register(LGBMRegressor, "LightGbmLGBMRegressor", convert_lightgbm)


_TREE_CLASSIFIER_OPTIONS = {"nocl": [True, False], "zipmap": [True, False, "columns"]}


def _register(
    model: type, alias: str, converter: Any, options: dict[str, Any] | None = None
) -> None:
    """Classifiers are the registrations with a ``zipmap`` option (skl2onnx's own rule)."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common import shape_calculator as sc

    is_classifier = options is not None and "zipmap" in options
    shapes = (
        sc.calculate_linear_classifier_output_shapes
        if is_classifier
        else sc.calculate_linear_regressor_output_shapes
    )
    update_registered_converter(model, alias, shapes, converter, options=options)
