"""Building a :class:`ReferenceProfile` from reference data (training data or an upload).

Column kinds: pandas numeric dtypes (int, float) are numeric; bool, string, object and
category columns are categorical; an object column holding only numbers is numeric; datetime
and timedelta columns are skipped (listed in ``profile.skipped``). ``numeric=`` /
``categorical=`` override the inference (e.g. an integer zip code is categorical). A numeric
column without a single finite value is profiled as categorical (only null vs other), so a
live value there still shows up as drift.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from sibyl.errors import InvalidInputError
from sibyl.monitoring.drift._encode import numeric_bins, numeric_excess
from sibyl.monitoring.drift._outputs import (
    default_classes,
    infer_kind,
    output_columns,
    split_outputs,
)
from sibyl.monitoring.drift._profile import (
    CategoricalProfile,
    ColumnKind,
    ColumnProfile,
    NumericProfile,
    OutputKind,
    ReferenceProfile,
    Scalar,
    check_profile,
)
from sibyl.monitoring.drift._read import as_float, categorical_codes, is_null, lookup_table

QUANTILES = {
    "p01": 0.01,
    "p05": 0.05,
    "p25": 0.25,
    "p50": 0.5,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}


def build_profile(
    data: Any,
    outputs: Any = None,
    *,
    columns: Sequence[str] | None = None,
    numeric: Iterable[str] = (),
    categorical: Iterable[str] = (),
    exclude: Iterable[str] = (),
    output_kind: OutputKind | str | None = None,
    classes: Sequence[Scalar] | None = None,
    bins: int = 20,
    top_k: int = 20,
    source: str = "training",
) -> ReferenceProfile:
    """Profile ``data`` (a DataFrame, a 2-D array with ``columns`` names — default ``"0"``,
    ``"1"`` … — or a mapping of columns) and the model's ``outputs`` on it.

    ``outputs``: a ``Prediction``, ``{"predictions", "probabilities", "classes"}``, 2-D
    probabilities or 1-D predictions (``output_kind`` overrides the guess: probabilities when
    given, float predictions → values, anything else → labels). ``bins`` reference-quantile
    bins per numeric column (fewer when values repeat); ``top_k`` most frequent values per
    categorical column. Raises InvalidInputError for empty data or bad arguments.
    """
    _check_sizes(bins, top_k)
    frame = _frame(data, columns)
    if len(frame) == 0:
        raise InvalidInputError("reference data has no rows", field="data")
    forced_num, forced_cat = set(numeric), set(categorical)
    both = forced_num & forced_cat
    if both:
        raise InvalidInputError(
            f"columns {sorted(both)} are both numeric and categorical", field="categorical"
        )
    excluded = {str(c) for c in exclude}
    features, skipped = [], []
    for name in frame.columns:
        kind = None if name in excluded else _kind(frame[name], name, forced_num, forced_cat)
        if kind is None:
            skipped.append(name)
        else:
            features.append(profile_column(name, frame[name].to_numpy(), kind, bins, top_k))
    out_kind, out_classes, out_cols = _outputs(
        outputs, output_kind, classes, len(frame), bins, top_k
    )
    profile = ReferenceProfile(
        features=tuple(features),
        outputs=out_cols,
        output_kind=out_kind,
        classes=out_classes,
        rows=len(frame),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        source=source,
        settings={"bins": bins, "top_k": top_k},
        skipped=tuple(skipped),
    )
    check_profile(profile)
    return profile


def profile_column(
    name: str, values: Any, kind: ColumnKind, bins: int = 20, top_k: int = 20
) -> ColumnProfile:
    """One column's profile (``values``: any 1-D sequence)."""
    if kind is ColumnKind.NUMERIC:
        x = as_float(values)
        if np.isfinite(x).any():
            return _numeric(name, x, bins)
    return _categorical(name, values, top_k)


def _numeric(name: str, x: np.ndarray, bins: int) -> NumericProfile:
    finite = x[np.isfinite(x)]
    # edges are observed values (not interpolated), so a discrete column's bins hold its values
    levels = np.linspace(0.0, 1.0, bins + 1)
    edges = np.unique(np.quantile(finite, levels, method="inverted_cdf"))
    top = edges[-1]
    if len(edges) == 1 or np.count_nonzero(finite == top) * 2 * bins >= len(finite):
        edges = np.append(edges, top)  # the maximum is an atom: it gets a bin of its own
    edges[-1] = np.nextafter(top, np.inf)  # the maximum falls inside the last bin
    index = numeric_bins(x, edges)
    counts = np.bincount(index, minlength=len(edges) + 2)
    excess = numeric_excess(x, index, edges)
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    quantiles = np.quantile(finite, list(QUANTILES.values()))
    return NumericProfile(
        name=name,
        edges=tuple(float(e) for e in edges),
        counts=tuple(int(c) for c in counts),
        excess=tuple(float(e) for e in excess),
        mean=float(np.mean(finite)),
        std=std,
        min=float(finite.min()),
        max=float(finite.max()),
        quantiles={k: float(q) for k, q in zip(QUANTILES, quantiles, strict=True)},
    )


def _categorical(name: str, values: Any, top_k: int) -> CategoricalProfile:
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    keys = Counter(_key(v) for v in items if not is_null(v))
    ranked = sorted(keys.items(), key=lambda kv: (-kv[1], type(kv[0]).__name__, str(kv[0])))
    top = tuple(k for k, _ in ranked[:top_k])
    codes = categorical_codes(items, lookup_table(top))
    counts = np.bincount(codes, minlength=len(top) + 2)
    return CategoricalProfile(name, top, tuple(int(c) for c in counts))


def _key(value: Any) -> Scalar:
    if isinstance(value, np.generic):
        value = value.item()
    return value if isinstance(value, str | int | float | bool) else str(value)


def _kind(
    series: pd.Series, name: str, forced_num: set[str], forced_cat: set[str]
) -> ColumnKind | None:
    if name in forced_num:
        return ColumnKind.NUMERIC
    if name in forced_cat:
        return ColumnKind.CATEGORICAL
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return ColumnKind.CATEGORICAL
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return None
    if pd.api.types.is_numeric_dtype(dtype):
        return ColumnKind.NUMERIC
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return ColumnKind.NUMERIC
    if inferred in ("datetime", "datetime64", "date", "timedelta", "time", "period"):
        return None
    return ColumnKind.CATEGORICAL


def _outputs(
    outputs: Any,
    kind: OutputKind | str | None,
    classes: Sequence[Scalar] | None,
    n: int,
    bins: int,
    top_k: int,
) -> tuple[OutputKind | None, tuple[Scalar, ...] | None, tuple[ColumnProfile, ...]]:
    if outputs is None:
        return None, None, ()
    wanted = None if kind is None else _output_kind(kind)
    raw = split_outputs(outputs, wanted)
    out_kind = wanted or infer_kind(raw)
    out_classes = None
    if out_kind is OutputKind.PROBABILITIES:
        out_classes = tuple(classes) if classes is not None else default_classes(raw)
    cols = output_columns(raw, out_kind, out_classes, n)
    profiled = tuple(
        profile_column(name, values, ck, bins, top_k) for name, (ck, values) in cols.items()
    )
    return out_kind, out_classes, profiled


def _output_kind(kind: OutputKind | str) -> OutputKind:
    try:
        return OutputKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in OutputKind)
        raise InvalidInputError(
            f"output_kind must be one of {known}, got {kind!r}", field="output_kind"
        ) from None


def _frame(data: Any, columns: Sequence[str] | None) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, np.ndarray):
        if data.ndim != 2:
            raise InvalidInputError(
                f"reference data must be 2-D, got shape {data.shape}", field="data"
            )
        names = list(columns) if columns is not None else [str(i) for i in range(data.shape[1])]
        if len(names) != data.shape[1]:
            raise InvalidInputError(
                f"{len(names)} column names for {data.shape[1]} columns", field="columns"
            )
        frame = pd.DataFrame(data, columns=names)
    elif isinstance(data, Mapping):
        frame = pd.DataFrame(dict(data))
    else:
        raise InvalidInputError(
            "reference data must be a DataFrame, a 2-D array or a mapping of columns, got "
            f"{type(data).__name__}",
            field="data",
        )
    return frame.set_axis([str(c) for c in frame.columns], axis=1)  # a new frame


def _check_sizes(bins: int, top_k: int) -> None:
    if not 2 <= bins <= 1000:
        raise InvalidInputError(f"bins must be in 2..1000, got {bins}", field="bins")
    if not 1 <= top_k <= 10_000:
        raise InvalidInputError(f"top_k must be in 1..10000, got {top_k}", field="top_k")
