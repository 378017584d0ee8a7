"""Tabular data sets for training: load a CSV/Parquet file (or take a DataFrame), pick the
target and feature columns, infer the task, and split it (stratified for classifiers).

Contract: :func:`load_dataset` never guesses silently — a missing file, an unknown format, a
missing target or feature column, a target with one value or a data set too small to split
raise :class:`~sibyl.errors.InvalidInputError` naming the field (``data``, ``target``,
``features``, ``task``, ``test_size``). Splits are deterministic for a given ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sibyl.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    import pandas as pd

_MAX_CLASSES = 50
"""An integer or string target with at most this many values is a classification target."""


class Task(StrEnum):
    """What is learned: a class label or a number."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"


@dataclass(frozen=True)
class Dataset:
    """Feature frame ``x``, target ``y``, the task and where it came from."""

    x: pd.DataFrame
    y: pd.Series[Any]
    task: Task
    target: str
    source: str = "<frame>"

    @property
    def features(self) -> list[str]:
        """The feature columns, in order."""
        return [str(c) for c in self.x.columns]


@dataclass(frozen=True)
class Split:
    """A training part and a held-out part of a :class:`Dataset`."""

    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series[Any]
    y_test: pd.Series[Any]
    task: Task


def read_frame(data: str | Path | pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The table at ``data`` (``.csv``, ``.csv.gz``, ``.parquet``/``.pq``) or ``data`` itself,
    with a description of its source."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data, "<frame>"
    path = Path(data)
    if not path.is_file():
        raise NotFoundError(f"Data file {path} does not exist; pass the path of a CSV or Parquet")
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return pd.read_parquet(path), str(path)
    if name.endswith((".csv", ".csv.gz", ".txt")):
        return pd.read_csv(path), str(path)
    raise InvalidInputError(
        f"Cannot read {path}: expected a .csv, .csv.gz, .parquet or .pq file", field="data"
    )


def load_dataset(
    data: str | Path | pd.DataFrame,
    target: str,
    features: list[str] | None = None,
    task: Task | str = "auto",
) -> Dataset:
    """``data``'s ``features`` (default: every column but ``target``) and ``target``; rows
    without a target are dropped. ``task="auto"`` infers it (:func:`infer_task`)."""
    frame, source = read_frame(data)
    if target not in frame.columns:
        raise InvalidInputError(
            f"Target column '{target}' is not in {source} (columns: {_names(frame)})",
            field="target",
        )
    chosen = features or [str(c) for c in frame.columns if c != target]
    missing = [c for c in chosen if c not in frame.columns]
    if missing or target in chosen:
        what = f"unknown {missing}" if missing else f"the target '{target}'"
        raise InvalidInputError(
            f"Feature list holds {what}; choose among {_names(frame)} without the target",
            field="features",
        )
    frame = frame[frame[target].notna()].reset_index(drop=True)
    y = frame[target]
    resolved = infer_task(y) if str(task) == "auto" else _task(task)
    if resolved is Task.CLASSIFICATION and y.nunique() < 2:
        raise InvalidInputError(
            f"Target '{target}' has a single value; a classifier needs at least two",
            field="target",
        )
    return Dataset(frame[chosen], y, resolved, target, source)


def infer_task(y: pd.Series[Any]) -> Task:
    """Classification for bool, string/categorical and integer targets with few values (≤ 50
    distinct), regression for floats and many-valued integers."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(y) or not pd.api.types.is_numeric_dtype(y):
        return Task.CLASSIFICATION
    if pd.api.types.is_integer_dtype(y) and y.nunique() <= _MAX_CLASSES:
        return Task.CLASSIFICATION
    return Task.REGRESSION


def split_dataset(data: Dataset, test_size: float = 0.25, seed: int = 0) -> Split:
    """Hold out ``test_size`` of the rows (stratified by class for classifiers), seeded."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_size < 1.0:
        raise InvalidInputError(f"test_size must be in (0, 1), got {test_size}", field="test_size")
    stratify = data.y if data.task is Task.CLASSIFICATION else None
    if stratify is not None and int(data.y.value_counts().min()) < 2:
        stratify = None  # a class with one row cannot be stratified; a plain split still works
    try:
        parts = train_test_split(
            data.x, data.y, test_size=test_size, random_state=seed, stratify=stratify
        )
    except ValueError as exc:
        raise InvalidInputError(
            f"Cannot hold out {test_size:.0%} of {len(data.x)} rows ({exc}); use more rows "
            "or another test_size",
            field="test_size",
        ) from exc
    x_train, x_test, y_train, y_test = parts
    return Split(x_train, x_test, y_train, y_test, data.task)


def _task(task: Task | str) -> Task:
    try:
        return Task(str(task))
    except ValueError:
        raise InvalidInputError(
            f"task must be auto, classification or regression, got '{task}'", field="task"
        ) from None


def _names(frame: pd.DataFrame) -> str:
    names = [str(c) for c in frame.columns]
    return ", ".join(names[:20]) + (" …" if len(names) > 20 else "")
