"""The two struggle models as MLflow pyfunc models (``mlflow.pyfunc.PythonModel``).

Both take a DataFrame with the :data:`~sibyl.zoo.struggle.features.FEATURES` columns (or a list
of records / a column dict) and return one row per input with the
:data:`~sibyl.zoo.struggle.interventions.OUTPUTS` columns: ``struggle_probability`` (float),
``struggling`` (bool), ``interventions`` and ``reasons`` (lists of strings).
:func:`~sibyl.zoo._registering.log_and_register_pyfunc` logs and registers them. Importing this
module imports MLflow.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.pyfunc.model import PythonModel

from sibyl.errors import InvalidInputError
from sibyl.zoo.struggle.model import StruggleModel
from sibyl.zoo.struggle.rules import RuleModel


def as_frame(model_input: Any) -> pd.DataFrame:
    """A DataFrame from a DataFrame, a list of records or a dict of columns;
    :class:`InvalidInputError` for anything else."""
    if isinstance(model_input, pd.DataFrame):
        return model_input
    if isinstance(model_input, list | dict):
        try:
            return pd.DataFrame(model_input)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"cannot read the rows ({exc})", field="model_input") from exc
    raise InvalidInputError(
        f"expected a DataFrame or records, got {type(model_input).__name__}", field="model_input"
    )


class RulesPyfunc(PythonModel):  # type: ignore[misc]  # mlflow is untyped
    """:class:`~sibyl.zoo.struggle.rules.RuleModel` served through pyfunc."""

    def __init__(self, rules: RuleModel | None = None) -> None:
        self.rules = rules if rules is not None else RuleModel()

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """The rule model's output rows (see the module docstring)."""
        return self.rules.predict(as_frame(model_input))


class StrugglePyfunc(PythonModel):  # type: ignore[misc]  # mlflow is untyped
    """A fitted :class:`~sibyl.zoo.struggle.model.StruggleModel` served through pyfunc; the
    model itself is :attr:`model` (what ``update_from_feedback`` keeps training)."""

    def __init__(self, model: StruggleModel) -> None:
        self.model = model

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """The logistic regression's output rows (see the module docstring)."""
        return self.model.predict(as_frame(model_input))
