"""Search spaces for tuning: a spec in JSON, YAML or a Python dict, validated into typed
parameters that Optuna samples.

Spec (one entry per hyper-parameter; a top-level ``params:`` mapping is accepted too, beside an
optional ``estimator:``)::

    n_estimators:  {type: int, low: 10, high: 300, step: 10}
    max_depth:     {type: int, low: 2, high: 12}
    learning_rate: {type: float, low: 0.001, high: 0.3, log: true}   # or type: loguniform
    subsample:     {type: float, low: 0.5, high: 1.0}
    criterion:     {type: categorical, choices: [gini, entropy]}

``int`` and ``float`` take ``low`` ≤ ``high``, an optional ``step`` (> 0) and ``log`` (then
``low`` > 0; a float cannot have both); ``loguniform`` (also ``log-uniform``, ``log_uniform``)
is a float with ``log: true``; ``categorical`` takes a non-empty ``choices`` list of strings,
numbers, booleans or null. Grid search needs a finite set per parameter: ``grid: [...]`` gives
it explicitly; otherwise ints use every ``step`` (at most ``grid_points`` values, evenly
spread), floats ``grid_points`` (default 5) evenly spaced values (geometrically when ``log``).
Every error is an :class:`InvalidInputError` whose ``field`` is ``space.<param>[.<key>]``.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sibyl.errors import InvalidInputError

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

Choice = str | int | float | bool | None
_TYPES = {"int", "float", "loguniform", "log-uniform", "log_uniform", "categorical"}
_KEYS = {"type", "low", "high", "step", "log", "choices", "grid", "grid_points"}
MAX_GRID = 10_000


@dataclass(frozen=True)
class Param:
    """One hyper-parameter: ``kind`` int | float | categorical and its bounds or choices."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Choice, ...] = ()
    grid: tuple[Choice, ...] = ()
    grid_points: int = 5

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution of this parameter."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices))
        low, high = self._bounds()
        if self.kind == "int":
            return IntDistribution(int(low), int(high), log=self.log, step=int(self.step or 1))
        return FloatDistribution(low, high, log=self.log, step=self.step)

    def _bounds(self) -> tuple[float, float]:
        if self.low is None or self.high is None:
            raise InvalidInputError(f"Parameter '{self.name}' has no bounds", field=self.name)
        return self.low, self.high

    def suggest(self, trial: optuna.Trial) -> Any:
        """Sample this parameter in ``trial``."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))  # type: ignore[arg-type]
        low, high = self._bounds()
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(low), int(high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.name, low, high, step=self.step, log=self.log)

    def grid_values(self) -> list[Choice]:
        """The finite values grid search tries (see the module docstring)."""
        if self.grid:
            return list(self.grid)
        if self.kind == "categorical":
            return list(self.choices)
        low, high = self._bounds()
        if self.kind == "int":
            return _int_grid(int(low), int(high), int(self.step or 1), self.grid_points)
        return _float_grid(low, high, self.grid_points, self.log)


@dataclass(frozen=True)
class SearchSpace:
    """Validated parameters, in spec order; ``estimator`` when the spec named one."""

    params: tuple[Param, ...]
    estimator: str | None = None
    fixed: dict[str, Any] = field(default_factory=dict)
    """Values passed as they are to every trial (spec entries that are not mappings)."""

    def names(self) -> list[str]:
        """The tuned parameter names."""
        return [p.name for p in self.params]

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """One value per parameter, sampled in ``trial``, plus the fixed values."""
        return {**self.fixed, **{p.name: p.suggest(trial) for p in self.params}}

    def distributions(self) -> dict[str, BaseDistribution]:
        """Optuna distributions by parameter name."""
        return {p.name: p.distribution() for p in self.params}

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of the parameters' grid values (:class:`InvalidInputError` past
        10,000 combinations)."""
        axes = [p.grid_values() for p in self.params]
        size = math.prod(len(a) for a in axes)
        if size > MAX_GRID:
            raise InvalidInputError(
                f"The grid has {size} points (more than {MAX_GRID}); give fewer grid values "
                "or use another strategy",
                field="space",
            )
        names = self.names()
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes)]

    def to_dict(self) -> dict[str, Any]:
        """The spec back as a dict (stored with a study)."""
        out: dict[str, Any] = dict(self.fixed)
        for p in self.params:
            entry: dict[str, Any] = {"type": p.kind}
            if p.kind == "categorical":
                entry["choices"] = list(p.choices)
            else:
                entry.update(low=p.low, high=p.high, log=p.log)
                if p.step is not None:
                    entry["step"] = p.step
            if p.grid:
                entry["grid"] = list(p.grid)
            out[p.name] = entry
        return out


def load_space(source: str | Path | Mapping[str, Any] | SearchSpace) -> SearchSpace:
    """A :class:`SearchSpace` from a file (``.json``, ``.yaml``/``.yml``), JSON/YAML text or a
    mapping; a :class:`SearchSpace` is returned as is."""
    if isinstance(source, SearchSpace):
        return source
    if isinstance(source, Mapping):
        return parse_space(source)
    text = str(source)
    path = Path(text)
    if "\n" not in text and len(text) < 4096 and path.suffix in (".json", ".yaml", ".yml"):
        if not path.is_file():
            raise InvalidInputError(f"Search space file {path} does not exist", field="space")
        text = path.read_text(encoding="utf-8")
    return parse_space(_parse_text(text))


def _parse_text(text: str) -> Any:
    import yaml

    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInputError(
            f"Search space is neither JSON nor YAML: {exc}", field="space"
        ) from exc


def parse_space(spec: Any) -> SearchSpace:
    """Validate a spec mapping (see the module docstring)."""
    if not isinstance(spec, Mapping):
        raise InvalidInputError(
            "A search space is a mapping of parameter name → {type: …}", field="space"
        )
    estimator = spec.get("estimator") if "params" in spec else None
    body = spec.get("params", spec)
    if not isinstance(body, Mapping) or not body:
        raise InvalidInputError("The search space has no parameters", field="space.params")
    params, fixed = [], {}
    for name, entry in body.items():
        if isinstance(entry, Mapping):
            params.append(_param(str(name), entry))
        else:
            fixed[str(name)] = entry
    if not params:
        raise InvalidInputError("The search space tunes no parameter", field="space")
    return SearchSpace(tuple(params), str(estimator) if estimator else None, fixed)


def _param(name: str, entry: Mapping[str, Any]) -> Param:
    where = f"space.{name}"
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise InvalidInputError(
            f"Parameter '{name}' has unknown keys {unknown}; allowed: {sorted(_KEYS)}",
            field=f"{where}.{unknown[0]}",
        )
    kind = str(entry.get("type", "")).lower()
    if kind not in _TYPES:
        raise InvalidInputError(
            f"Parameter '{name}' needs type int, float, loguniform or categorical, got "
            f"'{entry.get('type')}'",
            field=f"{where}.type",
        )
    grid = tuple(_choices(entry["grid"], f"{where}.grid")) if "grid" in entry else ()
    points = _positive_int(entry.get("grid_points", 5), f"{where}.grid_points")
    if kind == "categorical":
        choices = tuple(_choices(entry.get("choices"), f"{where}.choices"))
        return Param(name, "categorical", choices=choices, grid=grid, grid_points=points)
    log = bool(entry.get("log", False)) or kind in ("loguniform", "log-uniform", "log_uniform")
    kind = "int" if kind == "int" else "float"
    low, high = _number(entry, "low", where), _number(entry, "high", where)
    step = _number(entry, "step", where) if entry.get("step") is not None else None
    _check_bounds(name, kind, low, high, step, log, where)
    return Param(name, kind, low, high, step, log, grid=grid, grid_points=points)


def _check_bounds(
    name: str, kind: str, low: float, high: float, step: float | None, log: bool, where: str
) -> None:
    if low > high:
        raise InvalidInputError(
            f"Parameter '{name}': low {low} is above high {high}", field=f"{where}.low"
        )
    if kind == "int" and (low != int(low) or high != int(high)):
        raise InvalidInputError(
            f"Parameter '{name}' is an int: low and high must be integers", field=f"{where}.low"
        )
    if step is not None and step <= 0:
        raise InvalidInputError(f"Parameter '{name}': step must be > 0", field=f"{where}.step")
    if log and low <= 0:
        raise InvalidInputError(
            f"Parameter '{name}' is log-scaled: low must be > 0, got {low}", field=f"{where}.low"
        )
    if log and step is not None and kind == "float":
        raise InvalidInputError(
            f"Parameter '{name}': a float cannot have both log and step", field=f"{where}.step"
        )


def _number(entry: Mapping[str, Any], key: str, where: str) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(
            f"{where}.{key} must be a finite number, got {value!r}", field=f"{where}.{key}"
        )
    return float(value)


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{where} must be a positive integer", field=where)
    return value


def _choices(value: Any, where: str) -> list[Choice]:
    if not isinstance(value, list | tuple) or not value:
        raise InvalidInputError(f"{where} must be a non-empty list", field=where)
    for item in value:
        if item is not None and not isinstance(item, str | int | float | bool):
            raise InvalidInputError(
                f"{where} may hold strings, numbers, booleans or null, got {item!r}", field=where
            )
    return list(value)


def _int_grid(low: int, high: int, step: int, points: int) -> list[Choice]:
    values = list(range(low, high + 1, step))
    if points == 1:
        return [low]
    if len(values) <= points:
        return list(values)
    picked = sorted({values[round(i * (len(values) - 1) / (points - 1))] for i in range(points)})
    return list(picked)


def _float_grid(low: float, high: float, points: int, log: bool) -> list[Choice]:
    import numpy as np

    if points == 1 or low == high:
        return [low]
    values = np.geomspace(low, high, points) if log else np.linspace(low, high, points)
    return [float(v) for v in values]
