"""The reference profile of a model version: what its training inputs and outputs looked like.

A profile holds one :class:`NumericProfile` or :class:`CategoricalProfile` per tracked column
(input features, then model outputs). Bins are laid out the same way for both kinds, slot 0
always being *null* (None, NaN, ±inf)::

    numeric      [null, below, [e0, e1), [e1, e2), …, [e_{m-1}, e_m), above]
                 below = x < e0 (the reference minimum), above = x ≥ e_m (just past its maximum)
    categorical  [null, other, v_1, …, v_k]     the k most frequent reference values

JSON form (``to_dict`` / ``to_json``) is versioned by ``format`` and ``format_version``;
``from_dict(to_dict(p)) == p`` exactly (floats are written with ``repr`` precision). A reader
refuses a newer ``format_version`` than it knows and validates every field (a profile may be
uploaded), raising ``InvalidInputError`` naming the field.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeAlias, TypeVar

from sibyl.errors import InvalidInputError

PROFILE_FORMAT = "sibyl.drift.profile"
PROFILE_FORMAT_VERSION = 1

NULL_BIN = 0
BELOW_BIN = 1
OTHER_BIN = 1

_E = TypeVar("_E", bound=StrEnum)

Scalar: TypeAlias = "str | int | float | bool"
"""A categorical value or class label as JSON can hold it."""


class ColumnKind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class OutputKind(StrEnum):
    """What a model's outputs are, which decides the output columns of a profile.

    ``probabilities``: ``proba`` (binary: P(classes[1])) or ``proba[<class>]`` per class
    (numeric) and ``prediction`` (the label, categorical); ``labels``: ``prediction``
    (categorical); ``values``: ``prediction`` or ``prediction[<j>]`` per output (numeric).
    """

    PROBABILITIES = "probabilities"
    LABELS = "labels"
    VALUES = "values"


@dataclass(frozen=True)
class NumericProfile:
    """A numeric column: quantile bin edges, counts per bin (layout in the module docstring),
    and moments of the finite values (``std`` with ddof = 1).

    ``excess`` holds, per bin, the sum of its values' distances from the bin's finite edge
    (the lower edge; e₀ for 'below'): with it the Wasserstein distance is exact wherever the
    two CDFs do not cross inside a bin.
    """

    name: str
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    excess: tuple[float, ...]
    mean: float
    std: float
    min: float
    max: float
    quantiles: Mapping[str, float]

    kind = ColumnKind.NUMERIC

    @property
    def n(self) -> int:
        """Rows the profile was built from, nulls included."""
        return sum(self.counts)

    @property
    def null_share(self) -> float:
        return self.counts[NULL_BIN] / self.n if self.n else 0.0

    @property
    def proportions(self) -> tuple[float, ...]:
        total = self.n
        return tuple(c / total for c in self.counts) if total else tuple(0.0 for _ in self.counts)


@dataclass(frozen=True)
class CategoricalProfile:
    """A categorical (string, bool, or declared categorical) column: the top-k values and the
    counts of ``[null, other, *values]``."""

    name: str
    values: tuple[Scalar, ...]
    counts: tuple[int, ...]

    kind = ColumnKind.CATEGORICAL

    @property
    def n(self) -> int:
        return sum(self.counts)

    @property
    def null_share(self) -> float:
        return self.counts[NULL_BIN] / self.n if self.n else 0.0

    @property
    def proportions(self) -> tuple[float, ...]:
        total = self.n
        return tuple(c / total for c in self.counts) if total else tuple(0.0 for _ in self.counts)


ColumnProfile: TypeAlias = "NumericProfile | CategoricalProfile"


@dataclass(frozen=True)
class ReferenceProfile:
    """Columns of the reference data and of the model's outputs on it.

    ``output_kind`` / ``classes`` say how live model outputs map to the output columns
    (see :class:`OutputKind`); both are ``None`` when outputs were not profiled.
    """

    features: tuple[ColumnProfile, ...]
    outputs: tuple[ColumnProfile, ...] = ()
    output_kind: OutputKind | None = None
    classes: tuple[Scalar, ...] | None = None
    rows: int = 0
    created_at: str = ""
    source: str = "training"
    settings: Mapping[str, Any] = field(default_factory=dict)
    """How it was built (``bins``, ``top_k``) — informative only."""
    skipped: tuple[str, ...] = ()
    """Columns left out (unsupported types such as datetimes, or excluded on request)."""

    def feature(self, name: str) -> ColumnProfile:
        for column in self.features:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.features)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PROFILE_FORMAT,
            "format_version": PROFILE_FORMAT_VERSION,
            "created_at": self.created_at,
            "source": self.source,
            "rows": self.rows,
            "settings": dict(self.settings),
            "skipped": list(self.skipped),
            "features": [_column_to_dict(c) for c in self.features],
            "outputs": None
            if self.output_kind is None
            else {
                "kind": self.output_kind.value,
                "classes": None if self.classes is None else list(self.classes),
                "columns": [_column_to_dict(c) for c in self.outputs],
            },
        }

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceProfile:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidInputError(
                f"a drift profile must be JSON: {exc}", field="profile"
            ) from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> ReferenceProfile:
        """Validate and read the JSON form; InvalidInputError names the bad field."""
        data = _obj(data, "profile")
        _check_format(data)
        outputs = data.get("outputs")
        kind, classes = None, None
        out_cols: tuple[ColumnProfile, ...] = ()
        if outputs is not None:
            outputs = _obj(outputs, "outputs")
            kind = _enum(OutputKind, outputs.get("kind"), "outputs.kind")
            raw_classes = outputs.get("classes")
            classes = None if raw_classes is None else _scalars(raw_classes, "outputs.classes")
            out_cols = _columns(outputs.get("columns"), "outputs.columns")
        profile = cls(
            features=_columns(data.get("features"), "features"),
            outputs=out_cols,
            output_kind=kind,
            classes=classes,
            rows=_int(data.get("rows", 0), "rows"),
            created_at=str(data.get("created_at", "")),
            source=str(data.get("source", "")),
            settings=dict(_obj(data.get("settings", {}), "settings")),
            skipped=tuple(str(s) for s in _list(data.get("skipped", []), "skipped")),
        )
        check_profile(profile)
        return profile


def check_profile(profile: ReferenceProfile) -> None:
    """Raise InvalidInputError unless the profile has columns with unique names."""
    if not profile.features and not profile.outputs:
        raise InvalidInputError(
            "a drift profile needs at least one feature or output column", field="features"
        )
    for group, columns in (("features", profile.features), ("outputs", profile.outputs)):
        names = [c.name for c in columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InvalidInputError(f"duplicate column names {dupes}", field=group)


def _column_to_dict(column: ColumnProfile) -> dict[str, Any]:
    if isinstance(column, NumericProfile):
        return {
            "name": column.name,
            "kind": column.kind.value,
            "edges": list(column.edges),
            "counts": list(column.counts),
            "excess": list(column.excess),
            "mean": column.mean,
            "std": column.std,
            "min": column.min,
            "max": column.max,
            "quantiles": dict(column.quantiles),
        }
    return {
        "name": column.name,
        "kind": column.kind.value,
        "values": list(column.values),
        "counts": list(column.counts),
    }


def _columns(value: Any, where: str) -> tuple[ColumnProfile, ...]:
    return tuple(
        _column(_obj(c, f"{where}[{i}]"), f"{where}[{i}]")
        for i, c in enumerate(_list(value, where))
    )


def _column(data: Mapping[str, Any], where: str) -> ColumnProfile:
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"{where}.name must be a non-empty string", field=f"{where}.name")
    kind = _enum(ColumnKind, data.get("kind"), f"{where}.kind")
    counts = tuple(_int(c, f"{where}.counts") for c in _list(data.get("counts"), f"{where}.counts"))
    if kind is ColumnKind.CATEGORICAL:
        values = _scalars(data.get("values"), f"{where}.values")
        _expect_len(counts, len(values) + 2, f"{where}.counts")
        return CategoricalProfile(name, values, counts)
    edges = tuple(_float(e, f"{where}.edges") for e in _list(data.get("edges"), f"{where}.edges"))
    if not edges or any(b <= a for a, b in itertools.pairwise(edges)):
        raise InvalidInputError(
            f"{where}.edges must be a non-empty strictly increasing list", field=f"{where}.edges"
        )
    _expect_len(counts, len(edges) + 2, f"{where}.counts")
    excess = tuple(
        _float(e, f"{where}.excess") for e in _list(data.get("excess"), f"{where}.excess")
    )
    _expect_len(excess, len(edges) + 2, f"{where}.excess")
    quantiles = _obj(data.get("quantiles", {}), f"{where}.quantiles")
    return NumericProfile(
        name,
        edges,
        counts,
        excess,
        mean=_float(data.get("mean"), f"{where}.mean"),
        std=_float(data.get("std"), f"{where}.std"),
        min=_float(data.get("min"), f"{where}.min"),
        max=_float(data.get("max"), f"{where}.max"),
        quantiles={str(k): _float(v, f"{where}.quantiles") for k, v in quantiles.items()},
    )


def _check_format(data: Mapping[str, Any]) -> None:
    if data.get("format") != PROFILE_FORMAT:
        raise InvalidInputError(
            f"not a drift profile: 'format' must be {PROFILE_FORMAT!r}, got {data.get('format')!r}",
            field="format",
        )
    version = _int(data.get("format_version"), "format_version")
    if version > PROFILE_FORMAT_VERSION:
        raise InvalidInputError(
            f"drift profile format_version {version} is newer than this sibyl reads "
            f"({PROFILE_FORMAT_VERSION}); upgrade sibyl or rebuild the profile",
            field="format_version",
        )


def _expect_len(counts: tuple[Any, ...], n: int, where: str) -> None:
    if len(counts) != n:
        raise InvalidInputError(f"{where} must have {n} entries, got {len(counts)}", field=where)


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{where} must be a JSON object", field=where)
    return value


def _list(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise InvalidInputError(f"{where} must be a JSON array", field=where)
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"{where} must hold integers ≥ 0, got {value!r}", field=where)
    return value


def _float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"{where} must hold finite numbers, got {value!r}", field=where)
    return float(value)


def _scalars(value: Any, where: str) -> tuple[Scalar, ...]:
    items = _list(value, where)
    for item in items:
        if not isinstance(item, str | int | float | bool) or (
            isinstance(item, float) and not math.isfinite(item)
        ):
            raise InvalidInputError(
                f"{where} must hold strings, numbers or booleans, got {item!r}", field=where
            )
    return tuple(items)


def _enum(cls: type[_E], value: Any, where: str) -> _E:
    try:
        return cls(value)
    except ValueError:
        known = ", ".join(m.value for m in cls)
        raise InvalidInputError(
            f"{where} must be one of {known}, got {value!r}", field=where
        ) from None
