"""Cache keys: model + resolved version + a canonical digest of the row (never the request id).

A key reads ``<model>/<version>/<digest>`` where model and version are percent-encoded (so neither
can contain ``/`` or a Redis glob character) and ``digest`` is the 32-hex-digit BLAKE2b-128 of the
row's canonical bytes. The ``<model>/`` and ``<model>/<version>/`` prefixes are the namespaces
``purge`` deletes; a new version is a new namespace, so a version change never reads old entries.

Canonical form of a row — two rows share a key when they are the same *input* to the model:

* values are taken in signature order when ``columns`` is given: a record (mapping) and a tensor
  row (sequence, array row) with the same values then share a key, the record's key order does not
  matter, keys of a record that are not in ``columns`` are ignored (the schema drops or rejects
  them); without ``columns`` a record is encoded with its names, sorted;
* numbers compare by exact value, as Python's ``==`` does: ``1``, ``1.0``, ``np.int64(1)`` and
  ``np.float64(1.0)`` are one value (the schema casts a numeric column to one dtype before the
  model sees it); ``-0.0`` is ``0``; every NaN is one value; ``np.float32(0.1)`` is *not* ``0.1``
  (it is another number); ``True``/``False`` are not numbers (a separate key from 1/0);
* strings are exact (no trimming, no Unicode normalisation); ``None`` (and ``pd.NA``) is null;
  datetimes, dates and times are their ISO 8601 text (the same key as that text — the signature
  decides the type); lists, tuples and arrays are lists, nested values are canonicalised
  recursively (sequence models get their whole history in one cell).

The bytes: a *numeric row* — every value a float, or an int within ±2**53 (Python or numpy, not
bool) — is ``b"F"`` + its values as little-endian float64 (exact for those values; 3-4× faster than
JSON, and what a float array row already is). Any other row is ``b"J"`` + its canonical JSON:
compact, sorted keys, integral floats written as ints, NaN/±inf as ``NaN``/``Infinity``. The
prefix keeps the two apart; which one a row takes depends on its values only, so equal rows
always take the same.

Two rows that differ only in ways the model cannot see at worst share no entry (a miss); two
different inputs never share a key short of a BLAKE2b-128 collision.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, time
from functools import lru_cache
from hashlib import blake2b
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import quote

import numpy as np

from sibyl.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

Rows: TypeAlias = (
    "Sequence[Mapping[str, Any] | Sequence[Any]] | np.ndarray[Any, Any] | pd.DataFrame"
)

_AS_IS = frozenset({str, int, bool, type(None)})
_EXACT = 2**53
_NAN = float("nan")
_FLOAT_DTYPES = frozenset({np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.float16)})
_ROWS = (list, tuple)
_VECTORISE_FROM = 8  # rows; numpy's fixed cost dominates below


def _python_encoder() -> Callable[[Any], str]:
    return json.JSONEncoder(
        ensure_ascii=False,
        check_circular=False,
        allow_nan=True,
        sort_keys=True,
        separators=(",", ":"),
    ).encode


def _json_encoder() -> Callable[[Any], str]:
    """Compact, sorted-keys JSON; NaN/±inf as NaN/Infinity/-Infinity. CPython's C encoder called
    directly (3× faster than ``JSONEncoder.encode``, which rebuilds it on every call); same text."""
    make = getattr(json.encoder, "c_make_encoder", None)
    quote_str = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or quote_str is None:
        return _python_encoder()
    chunks = make(None, None, quote_str, None, ":", ",", True, False, True)
    return lambda value: "".join(chunks(value, 0))


_encode = _json_encoder()


@lru_cache(maxsize=4096)
def namespace(model: str, version: str | None = None) -> str:
    """The key prefix of ``model`` (all versions) or of one ``version`` of it."""
    ns = quote(model, safe="") + "/"
    return ns if version is None else ns + quote(version, safe="") + "/"


def make_keys(
    model: str, version: str, rows: Rows, columns: Sequence[str] | None = None
) -> list[str]:
    """One cache key per row of ``rows`` (records, sequences, a 2-D array or a DataFrame), values
    in ``columns`` order when given. Raises ``InvalidInputError`` when a record lacks a column or
    a sequence has the wrong length, ``TypeError`` for a value with no canonical form."""
    ns = namespace(model, version)
    if isinstance(rows, np.ndarray) and rows.ndim == 2 and rows.dtype in _FLOAT_DTYPES:
        if columns is not None and rows.shape[1] != len(columns):
            raise InvalidInputError(
                f"rows have {rows.shape[1]} values; the signature has "
                f"{len(columns)} columns {list(columns)}"
            )
        finite = _finite_float_digests(rows, ns)
        if finite is not None:
            return finite
        if len(rows) >= _VECTORISE_FROM:
            return [ns + d for d in _float_array_digests(rows)]
    return [ns + row_digest(row, columns) for row in _iter_rows(rows, columns)]


def _finite_float_digests(rows: np.ndarray[Any, Any], ns: str) -> list[str] | None:
    """Keys of a float array whose values are all finite and within ±2**53 (the usual batch),
    whose canonical bytes are then just its float64 bytes; ``None`` for anything else (NaN, ±inf
    or huge values), which takes the general way. One pass of numpy, one hash per row."""
    if rows.size == 0:
        return None
    a = rows.astype("<f8", copy=True)
    a += 0.0  # -0.0 → 0.0
    if not np.abs(a).max() <= _EXACT:  # false for NaN too
        return None
    buf, width = a.tobytes(), a.shape[1] * 8
    if width == 0:
        return None
    return [
        ns + blake2b(b"F" + buf[i : i + width], digest_size=16).hexdigest()
        for i in range(0, len(buf), width)
    ]


def row_digest(row: Mapping[str, Any] | Sequence[Any], columns: Sequence[str] | None = None) -> str:
    """The 32-hex-digit BLAKE2b-128 digest of ``row``'s canonical bytes (see the module doc)."""
    data = _plain_numeric_bytes(row, columns)
    if data is None:
        values = _canonical_row(row, columns)
        data = _numeric_bytes(values) if type(values) is list else None
        if data is None:
            data = b"J" + _encode(values).encode()
    return blake2b(data, digest_size=16).hexdigest()


def _plain_numeric_bytes(row: Any, columns: Sequence[str] | None) -> bytes | None:
    """The numeric-row bytes straight from a list/tuple/dict of Python floats and ints within
    ±2**53 (the common row), skipping canonicalisation; ``None`` for anything else (NaN and ±inf
    included), which then takes the general way to the same bytes."""
    kind = type(row)
    if kind is dict and columns is not None:
        row = [row.get(c) for c in columns]  # a missing column is None: not numeric
    elif not (kind in _ROWS and (columns is None or len(row) == len(columns))):
        return None
    floats: list[float] = []
    for v in row:
        t = type(v)
        if (t is float or t is int) and -_EXACT <= v <= _EXACT:
            floats.append(v + 0.0)  # -0.0 → 0.0
        else:
            return None
    return b"F" + struct.pack(f"<{len(floats)}d", *floats)


def _numeric_bytes(values: list[Any]) -> bytes | None:
    """``b"F"`` + float64 bytes of canonical values that are all numbers exact in float64 (NaN as
    one NaN), ``None`` otherwise. Canonical values hold no numpy scalars, no -0.0, and integral
    floats already as ints."""
    for v in values:
        kind = type(v)
        if not (kind is float or (kind is int and -_EXACT <= v <= _EXACT)):
            return None
    return b"F" + struct.pack(f"<{len(values)}d", *[v if v == v else _NAN for v in values])


def _float_array_digests(rows: np.ndarray[Any, Any]) -> list[str]:
    """Digests of the rows of a float array, numeric-row bytes built for all rows at once; a row
    holding a finite value beyond ±2**53 (an int in canonical form) goes the row-by-row way."""
    a = np.ascontiguousarray(rows, dtype="<f8") + 0.0  # + 0.0 turns -0.0 into 0.0
    nan = np.isnan(a)
    a[nan] = _NAN
    big = np.isfinite(a) & (np.abs(a) > _EXACT)
    buf, width = a.tobytes(), a.shape[1] * 8
    out = [
        blake2b(b"F" + buf[i : i + width], digest_size=16).hexdigest()
        for i in range(0, len(buf), width)
    ]
    for i in np.flatnonzero(big.any(axis=1)):
        out[i] = row_digest(a[i].tolist())
    return out


def canonical_json(
    row: Mapping[str, Any] | Sequence[Any], columns: Sequence[str] | None = None
) -> str:
    """The canonical JSON of ``row`` (what :func:`row_digest` hashes when the row is not numeric;
    for debugging and tests)."""
    return _encode(_canonical_row(row, columns))


def _iter_rows(rows: Rows, columns: Sequence[str] | None) -> Sequence[Any]:
    if isinstance(rows, np.ndarray):
        if rows.ndim != 2:
            raise InvalidInputError(f"cache keys need a 2-D array of rows, got {rows.ndim}-D")
        return _plain(rows).tolist()  # type: ignore[no-any-return]
    if hasattr(rows, "itertuples") and hasattr(rows, "columns"):  # a DataFrame, pandas not imported
        return _frame_rows(rows, columns)
    return rows  # type: ignore[return-value]


def _frame_rows(frame: Any, columns: Sequence[str] | None) -> list[Any]:
    if columns is not None:
        return list(frame[list(columns)].itertuples(index=False, name=None))
    names = [str(c) for c in frame.columns]
    return [dict(zip(names, t, strict=True)) for t in frame.itertuples(index=False, name=None)]


def _canonical_row(row: Mapping[str, Any] | Sequence[Any], columns: Sequence[str] | None) -> Any:
    if type(row) in _ROWS and (columns is None or len(row) == len(columns)):
        return _canonical_values(row)  # the common case, without ABC checks
    if isinstance(row, Mapping):
        if columns is None:
            return _canonical(row)
        try:
            return _canonical_values([row[c] for c in columns])
        except KeyError as exc:
            raise InvalidInputError(
                f"row has no column {exc.args[0]!r}; cache keys need every "
                f"signature column {list(columns)}"
            ) from None
    if isinstance(row, str | bytes) or not isinstance(row, Sequence | np.ndarray):
        raise TypeError(f"a row is a mapping or a sequence of values, got {type(row).__name__}")
    if columns is not None and len(row) != len(columns):
        raise InvalidInputError(
            f"row has {len(row)} values; the signature has {len(columns)} columns {list(columns)}"
        )
    return _canonical_values(row)


def _canonical_values(values: Iterable[Any]) -> list[Any]:
    # _canonical inlined for the plain types: this runs for every value of every row
    return [
        v if type(v) in _AS_IS else _number(v) if type(v) is float else _canonical_other(v)
        for v in values
    ]


def _canonical(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        return _number(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    return _canonical_other(value)


def _number(value: float) -> float | int:
    # integral floats become ints so 1.0 == 1 (and -0.0 → 0); NaN/±inf stay floats: json writes
    # them as NaN/Infinity/-Infinity whatever their sign or payload bits
    return int(value) if value.is_integer() else value


def _canonical_other(value: Any) -> Any:
    if isinstance(value, np.datetime64 | np.timedelta64):
        return str(value)  # .tolist() of a ns datetime is an int: it would equal that number
    if isinstance(value, np.generic):
        item = value.item()
        if isinstance(item, np.generic):  # longdouble, …: no exact Python equivalent
            raise TypeError(f"a cache key cannot be built from a {type(value).__name__} value")
        return _canonical(item)
    if isinstance(value, np.ndarray):
        return _canonical(_plain(value).tolist())  # nested lists
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, float):
        return _number(float(value))
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return _canonical_mapping(value)
    if isinstance(value, list | tuple):
        return _canonical_values(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if type(value).__name__ == "NAType":  # pd.NA, without importing pandas
        return None
    raise TypeError(
        f"a cache key cannot be built from a {type(value).__name__} value; supported: "
        "None, bool, int, float, str, lists/tuples/dicts of them, numpy scalars and "
        "arrays, datetime/date/time"
    )


def _plain(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Datetime arrays as ISO text (``tolist`` of nanoseconds gives ints)."""
    return array.astype(str) if array.dtype.kind in "mM" else array


def _canonical_mapping(value: Mapping[Any, Any]) -> dict[str, Any]:
    if not all(isinstance(k, str) for k in value):
        raise TypeError("a cache key can only be built from a mapping with string keys")
    return {k: _canonical(v) for k, v in value.items()}
