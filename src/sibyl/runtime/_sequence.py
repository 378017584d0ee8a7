"""Sequence columns: per-row histories of integer ids (MLflow ``Array(long)`` columns).

A :class:`SequenceSpec` holds the rules of one model's sequence columns, read from its MLflow
metadata ``metadata["sibyl"]["sequence"]`` (the contract is in ``docs/zoo.md``): which columns
are sequences (equal lengths within a row), the shortest and longest accepted sequence, whether
longer ones are refused or truncated to their most recent items, and inclusive id ranges per
column (sequence or scalar). :meth:`SequenceSpec.check` enforces them on the rows of one request
before batching and raises :class:`~sibyl.errors.InvalidInputError` naming the row, the column
and what is allowed. Instances are immutable and safe to share between threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from sibyl.errors import InvalidInputError

_KEYS = frozenset({"columns", "min_length", "max_length", "truncate", "ranges", "outputs"})
_RANGED_KINDS = frozenset({"seq", "int"})


@dataclass(frozen=True, slots=True)
class SequenceSpec:
    """The sequence rules of one model; build it with :meth:`from_metadata`.

    ``positions`` are the sequence columns' indices in the schema's column order;
    ``scalar_ranges`` are ``(index, name, low, high)`` of ranged scalar columns.
    """

    columns: tuple[str, ...]
    positions: tuple[int, ...]
    min_length: int = 1
    max_length: int | None = None
    truncate: bool = False
    ranges: Mapping[str, tuple[int, int]] | None = None
    scalar_ranges: tuple[tuple[int, str, int, int], ...] = ()
    outputs: tuple[str, ...] = ()

    @classmethod
    def from_metadata(
        cls, metadata: Any, names: Sequence[str], kinds: Sequence[str]
    ) -> SequenceSpec | None:
        """The spec of a signature's columns (``names`` with their ``kinds``) and the model's
        ``metadata["sibyl"]["sequence"]`` value (``None`` when absent).

        ``None`` when there are neither sequence columns nor metadata; defaults (every
        ``seq`` column, ``min_length`` 1, no maximum, no ranges) when the metadata is absent.
        Raises ``ValueError`` naming the key when the metadata contradicts the signature.
        """
        seq = [n for n, k in zip(names, kinds, strict=True) if k == "seq"]
        if metadata is None and not seq:
            return None
        meta = _mapping(metadata if metadata is not None else {}, "sibyl.sequence")
        unknown = sorted(set(meta) - _KEYS)
        if unknown:
            raise ValueError(f"sibyl.sequence has unknown key(s) {unknown}; known: {sorted(_KEYS)}")
        columns = _columns(meta.get("columns", seq), seq)
        min_length = _count(meta.get("min_length", 1), "min_length")
        max_length = meta.get("max_length")
        if max_length is not None and _count(max_length, "max_length") < max(min_length, 1):
            raise ValueError(f"sibyl.sequence.max_length {max_length} is below min_length")
        ranges = _ranges(meta.get("ranges", {}), dict(zip(names, kinds, strict=True)))
        index = {n: i for i, n in enumerate(names)}
        return cls(
            columns=columns,
            positions=tuple(index[c] for c in columns),
            min_length=min_length,
            max_length=max_length,
            truncate=_flag(meta.get("truncate", False)),
            ranges=ranges,
            scalar_ranges=tuple(
                (index[c], c, lo, hi) for c, (lo, hi) in ranges.items() if c not in columns
            ),
            outputs=_names(meta.get("outputs", [])),
        )

    def check(self, rows: list[list[Any]], field: str, columnar: bool = False) -> list[list[Any]]:
        """Validate the sequence and ranged scalar cells of ``rows`` (values in schema order).

        Returns new rows whose sequence cells are ``list[int]`` (JSON strings of lists, arrays
        and integral floats accepted), truncated to the most recent ``max_length`` items when
        ``truncate``. ``columns`` says the request was column-major (for the paths in errors).
        Raises :class:`InvalidInputError`; scalar cells of the wrong type are left to the
        schema's type checks.
        """
        out = []
        for r, row in enumerate(rows):
            new = list(row)
            lengths = {}
            for pos, col in zip(self.positions, self.columns, strict=True):
                ids = as_ids(row[pos], _path(field, r, col, columnar))
                lengths[col] = len(ids)
                new[pos] = ids
            self._check_lengths(new, lengths, _path(field, r, None, columnar), field, r, columnar)
            for pos, col, lo, hi in self.scalar_ranges:
                _check_scalar(new[pos], lo, hi, _path(field, r, col, columnar))
            out.append(new)
        return out

    def warmup_record(self, columns: Sequence[Any]) -> dict[str, Any] | None:
        """One valid row (shortest sequences of the lowest ids) for warm-up without an input
        example; ``None`` when a column's kind has no obvious valid value."""
        ranges = self.ranges or {}
        first = {"seq": None, "int": 0, "float": 0.0, "bool": False}
        record: dict[str, Any] = {}
        for c in columns:
            if c.kind not in first:
                return None
            low = ranges.get(c.name, (0, 0))[0]
            record[c.name] = [low] * max(self.min_length, 1) if c.kind == "seq" else low
            if c.kind in ("float", "bool"):
                record[c.name] = first[c.kind]
        return record

    def _check_lengths(
        self,
        row: list[Any],
        lengths: dict[str, int],
        where: str,
        field: str,
        r: int,
        columnar: bool,
    ) -> None:
        if len(set(lengths.values())) > 1:
            got = ", ".join(f"{c}: {n}" for c, n in lengths.items())
            raise InvalidInputError(
                f"'{where}': sequence columns {list(self.columns)} must have equal lengths in a "
                f"row, got {got}",
                field=where,
            )
        for pos, col in zip(self.positions, self.columns, strict=True):
            path, ids = _path(field, r, col, columnar), row[pos]
            self._check_length(ids, path)
            bounds = (self.ranges or {}).get(col)
            if bounds is not None:  # everything sent is checked, truncated items included
                _check_ids(ids, bounds[0], bounds[1], path, col)
            if self.max_length is not None and len(ids) > self.max_length:
                row[pos] = ids[-self.max_length :]

    def _check_length(self, ids: list[int], path: str) -> None:
        if len(ids) < self.min_length:
            what = "is empty" if not ids else f"has {len(ids)} items"
            raise InvalidInputError(
                f"'{path}' {what}; send at least {self.min_length} item(s) of history",
                field=path,
            )
        if self.max_length is not None and len(ids) > self.max_length and not self.truncate:
            raise InvalidInputError(
                f"'{path}' has {len(ids)} items; the maximum is {self.max_length} "
                f"(send the most recent {self.max_length})",
                field=path,
            )


def as_ids(value: Any, where: str) -> list[int]:
    """A sequence cell as a list of ints: a list (or array, tuple, or JSON string of a list —
    how CSV and OIP V2 BYTES carry it) of integers; bools and non-integral floats are refused."""
    if type(value) is str:
        value = _parse(value, where)
    elif isinstance(value, (np.ndarray, tuple)):
        value = list(value.tolist() if isinstance(value, np.ndarray) else value)
    if type(value) is not list:
        got = "null" if value is None else f"{type(value).__name__} {value!r:.40}"
        raise InvalidInputError(f"'{where}': expected a list of integers, got {got}", field=where)
    if all(type(v) is int for v in value):
        return value
    return [_as_id(v, f"{where}[{i}]") for i, v in enumerate(value)]


def _as_id(v: Any, where: str) -> int:
    integral = isinstance(v, (float, np.floating)) and float(v).is_integer()
    if isinstance(v, (bool, np.bool_)):
        reason = f"got {str(v).lower()} (booleans are not ids)"
    elif isinstance(v, (int, np.integer)) or integral:
        return int(v)
    elif isinstance(v, (float, np.floating)):
        reason = f"got {v!r} (float → int is not a safe cast)"
    else:
        reason = "got null" if v is None else f"got {type(v).__name__} {v!r:.40}"
    raise InvalidInputError(f"'{where}': expected an integer id, {reason}", field=where)


def _check_ids(ids: list[int], lo: int, hi: int, where: str, col: str) -> None:
    if not ids or (lo <= min(ids) and max(ids) <= hi):
        return
    i = next(i for i, v in enumerate(ids) if not lo <= v <= hi)
    raise InvalidInputError(
        f"'{where}[{i}]': {col} id {ids[i]} is outside {lo}..{hi}", field=f"{where}[{i}]"
    )


def _check_scalar(v: Any, lo: int, hi: int, where: str) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return  # a wrong type is reported by the schema's type check
    if not lo <= v <= hi:
        raise InvalidInputError(
            f"'{where}': {v!r} is outside the allowed ids {lo}..{hi}", field=where
        )


def _path(field: str, r: int, col: str | None, columnar: bool) -> str:
    if col is None:
        return f"{field}[{r}]" if not columnar else f"{field} row {r}"
    return f"{field}.{col}[{r}]" if columnar else f"{field}[{r}].{col}"


def _parse(text: str, where: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidInputError(
            f"'{where}': expected a list of integers (or a JSON string of one), got "
            f"str {text!r:.40}",
            field=where,
        ) from None


# -- metadata parsing (load time) ---------------------------------------------------------
def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{key} must be a mapping, got {type(value).__name__}")
    return value


def _columns(value: Any, seq: list[str]) -> tuple[str, ...]:
    cols = _names(value)
    if set(cols) != set(seq) or not cols:
        raise ValueError(
            f"sibyl.sequence.columns {list(cols)} must name exactly the signature's Array(long) "
            f"columns {seq}"
        )
    return tuple(c for c in seq)  # signature order


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of column names, got {value!r:.60}")
    return tuple(value)


def _count(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"sibyl.sequence.{key} must be a non-negative integer, got {value!r}")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"sibyl.sequence.truncate must be true or false, got {value!r}")
    return value


def _ranges(value: Any, kinds: Mapping[str, str]) -> dict[str, tuple[int, int]]:
    out = {}
    for col, bounds in _mapping(value, "sibyl.sequence.ranges").items():
        if kinds.get(col) not in _RANGED_KINDS:
            raise ValueError(
                f"sibyl.sequence.ranges['{col}']: not an integer or Array(long) column of the "
                "signature"
            )
        ok = isinstance(bounds, (list, tuple)) and len(bounds) == 2
        if not ok or not all(type(b) is int for b in bounds) or bounds[0] > bounds[1]:
            raise ValueError(f"sibyl.sequence.ranges['{col}'] must be [low, high], got {bounds!r}")
        out[str(col)] = (int(bounds[0]), int(bounds[1]))
    return out
