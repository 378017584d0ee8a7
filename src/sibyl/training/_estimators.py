"""Estimators by name, and the pipeline that wraps one with the preprocessing it needs.

Names (``ESTIMATORS``; each resolves to a classifier or a regressor by the task):

=========================  ===========================  ==============================
name                       classifier                   regressor
=========================  ===========================  ==============================
``linear``                 LogisticRegression           Ridge
``random_forest``          RandomForestClassifier       RandomForestRegressor
``extra_trees``            ExtraTreesClassifier         ExtraTreesRegressor
``gradient_boosting``      GradientBoostingClassifier   GradientBoostingRegressor
``hist_gradient_boosting`` HistGradientBoosting…        HistGradientBoosting…
``xgboost``                xgboost.XGBClassifier        xgboost.XGBRegressor
``lightgbm``               lightgbm.LGBMClassifier      lightgbm.LGBMRegressor
=========================  ===========================  ==============================

A dotted class path under ``sklearn.``, ``xgboost.`` or ``lightgbm.`` works too (e.g.
``sklearn.svm.SVC``). :func:`build_pipeline` returns ``Pipeline([("prep", …), ("model", …)])``:
numeric columns median-imputed (and standardised for linear models), other columns
most-frequent-imputed and one-hot encoded (unknown values ignored) — so the registered model
takes the raw columns and missing values. Parameters go to the estimator (``params``), checked by
scikit-learn's ``set_params`` (:class:`InvalidInputError` on ``params`` naming the bad one).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sibyl.errors import InvalidInputError, MissingExtraError
from sibyl.training._data import Task

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline


@dataclass(frozen=True, slots=True)
class EstimatorKind:
    """One named estimator family: its two classes, defaults and whether it wants scaling."""

    name: str
    classifier: str
    regressor: str
    defaults: tuple[tuple[str, Any], ...] = ()
    scaled: bool = False
    extra: str | None = None
    """The sibyl extra that installs it (None: scikit-learn, always there)."""


ESTIMATORS: dict[str, EstimatorKind] = {
    k.name: k
    for k in (
        EstimatorKind(
            "linear",
            "sklearn.linear_model.LogisticRegression",
            "sklearn.linear_model.Ridge",
            scaled=True,
        ),
        EstimatorKind(
            "random_forest",
            "sklearn.ensemble.RandomForestClassifier",
            "sklearn.ensemble.RandomForestRegressor",
            (("n_estimators", 100),),
        ),
        EstimatorKind(
            "extra_trees",
            "sklearn.ensemble.ExtraTreesClassifier",
            "sklearn.ensemble.ExtraTreesRegressor",
        ),
        EstimatorKind(
            "gradient_boosting",
            "sklearn.ensemble.GradientBoostingClassifier",
            "sklearn.ensemble.GradientBoostingRegressor",
        ),
        EstimatorKind(
            "hist_gradient_boosting",
            "sklearn.ensemble.HistGradientBoostingClassifier",
            "sklearn.ensemble.HistGradientBoostingRegressor",
        ),
        EstimatorKind(
            "xgboost",
            "xgboost.XGBClassifier",
            "xgboost.XGBRegressor",
            (("n_jobs", 1), ("tree_method", "hist"), ("verbosity", 0)),
            extra="xgboost",
        ),
        EstimatorKind(
            "lightgbm",
            "lightgbm.LGBMClassifier",
            "lightgbm.LGBMRegressor",
            (("n_jobs", 1), ("verbose", -1)),
            extra="lightgbm",
        ),
    )
}
_ALIASES = {
    "logistic_regression": "linear",
    "ridge": "linear",
    "rf": "random_forest",
    "hgb": "hist_gradient_boosting",
    "xgb": "xgboost",
    "lgbm": "lightgbm",
}
_DOTTED_PREFIXES = ("sklearn.", "xgboost.", "lightgbm.")
_MAX_ITER_LINEAR = 2000


def installed_estimators() -> list[str]:
    """The :data:`ESTIMATORS` whose library is importable here."""
    return [
        name
        for name, kind in ESTIMATORS.items()
        if kind.extra is None or importlib.util.find_spec(kind.extra) is not None
    ]


def canonical_name(name: str) -> str:
    """``name`` with aliases resolved (``rf`` → ``random_forest``); dotted paths unchanged."""
    return _ALIASES.get(name, name)


def make_estimator(
    name: str, task: Task, params: dict[str, Any] | None = None, seed: int = 0
) -> Any:
    """A new, unfitted estimator ``name`` for ``task`` with ``params`` (seeded with ``seed``
    where it takes a ``random_state`` not given in ``params``)."""
    name = canonical_name(name)
    kind = ESTIMATORS.get(name)
    path = _class_path(name, kind, task)
    estimator = _load_class(path, kind)()
    chosen = dict(kind.defaults) if kind else {}
    if kind is not None and kind.name == "linear" and task is Task.CLASSIFICATION:
        chosen["max_iter"] = _MAX_ITER_LINEAR
    chosen.update(params or {})
    available = estimator.get_params()
    if "random_state" in available and "random_state" not in chosen:
        chosen["random_state"] = seed
    unknown = sorted(set(chosen) - set(available))
    if unknown and (kind is None or kind.extra is None):  # xgboost/lightgbm take **kwargs
        raise InvalidInputError(
            f"{type(estimator).__name__} has no parameter {', '.join(unknown)}; its parameters: "
            f"{', '.join(sorted(available))}",
            field="params",
        )
    try:
        estimator.set_params(**chosen)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"Bad estimator parameters: {exc}", field="params") from exc
    return estimator


def build_pipeline(estimator: Any, x: pd.DataFrame, *, scaled: bool | None = None) -> Pipeline:
    """``Pipeline([("prep", preprocessing of x's columns), ("model", estimator)])``.

    ``scaled`` (default: whether the estimator is linear) standardises numeric columns.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric, other = split_columns(x)
    scale = _is_linear(estimator) if scaled is None else scaled
    numeric_steps: list[Any] = [SimpleImputer(strategy="median")]
    if scale:
        numeric_steps.append(StandardScaler())
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(("numeric", make_pipeline(*numeric_steps), numeric))
    if other:
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False, max_categories=50)
        parts.append(
            ("categorical", make_pipeline(SimpleImputer(strategy="most_frequent"), encoder), other)
        )
    prep = ColumnTransformer(parts, verbose_feature_names_out=False)
    return Pipeline([("prep", prep), ("model", estimator)])


def split_columns(x: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(numeric columns, other columns) of ``x`` — bools count as categorical."""
    import pandas as pd

    numeric: list[str] = []
    other: list[str] = []
    for column in x.columns:
        series = x[column]
        is_number = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        (numeric if is_number else other).append(str(column))
    return numeric, other


def family_of(model: Any) -> str:
    """The :data:`ESTIMATORS` name of a fitted model (or a pipeline's last step), else its
    class name."""
    estimator = final_estimator(model)
    cls = f"{type(estimator).__module__}.{type(estimator).__name__}"
    for kind in ESTIMATORS.values():
        if cls.startswith(_module_root(kind.classifier)) and type(estimator).__name__ in (
            kind.classifier.rsplit(".", 1)[1],
            kind.regressor.rsplit(".", 1)[1],
        ):
            return kind.name
    return type(estimator).__name__


def final_estimator(model: Any) -> Any:
    """The last step of a pipeline, or ``model`` itself."""
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def _module_root(path: str) -> str:
    return path.split(".", 1)[0]


def _is_linear(estimator: Any) -> bool:
    return type(estimator).__module__.startswith(("sklearn.linear_model", "sklearn.svm"))


def _class_path(name: str, kind: EstimatorKind | None, task: Task) -> str:
    if kind is not None:
        return kind.classifier if task is Task.CLASSIFICATION else kind.regressor
    if name.startswith(_DOTTED_PREFIXES) and name.count(".") >= 2:
        return name
    raise InvalidInputError(
        f"Unknown estimator '{name}'; use one of {', '.join(ESTIMATORS)} or a class path "
        "under sklearn., xgboost. or lightgbm.",
        field="estimator",
    )


def _load_class(path: str, kind: EstimatorKind | None) -> Any:
    module_name, _, cls_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        if kind is not None and kind.extra is not None:
            raise MissingExtraError(kind.extra, kind.extra) from None
        raise InvalidInputError(
            f"Cannot import module '{module_name}'", field="estimator"
        ) from None
    cls = getattr(module, cls_name, None)
    if cls is None or not hasattr(cls, "fit"):
        raise InvalidInputError(f"'{path}' is not an estimator class", field="estimator")
    return cls
