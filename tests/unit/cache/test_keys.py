"""Cache keys: the canonical form of a row (module doc of ``sibyl.cache._keys``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sibyl.cache import canonical_json, make_keys, namespace, row_digest
from sibyl.errors import InvalidInputError

COLS = ("a", "b")


def test_a_key_is_namespace_plus_a_128_bit_digest() -> None:
    (key,) = make_keys("churn", "3", [[1, 2]], COLS)
    ns, digest = key.rsplit("/", 1)
    assert ns + "/" == namespace("churn", "3") == "churn/3/"
    assert len(digest) == 32 and int(digest, 16) >= 0
    assert namespace("churn") == "churn/"


@pytest.mark.parametrize(
    ("model", "version"), [("a/b", "c"), ("a", "b/c"), ("a*", "1"), ("a b", "1"), ("é", "1")]
)
def test_names_are_escaped_so_namespaces_never_overlap(model: str, version: str) -> None:
    ns = namespace(model, version)
    assert ns.count("/") == 2 and not set(ns) & set("*?[]\\ ")
    assert namespace("a", "b/c") != namespace("a/b", "c")


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ([1, 2], [1.0, 2.0]),
        ([0.0, 2], [-0.0, 2]),
        ([np.int64(1), np.float32(2.0)], [1, 2]),
        ([np.float64(0.1), 5], [0.1, 5]),
        ([float("nan"), 1], [-float("nan"), 1.0]),
        ([1e20, 1], [10**20, 1]),
        ({"a": 1, "b": 2}, {"b": 2.0, "a": 1}),
        ({"a": 1, "b": 2, "extra": 9}, [1, 2]),
        ((1, 2), [1, 2]),
        ([[1, 2.0], 3], [np.array([1.0, 2.0]), 3]),
    ],
)
def test_rows_with_equal_values_share_a_digest(left: Any, right: Any) -> None:
    assert row_digest(left, COLS) == row_digest(right, COLS)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ([1, 2], [2, 1]),
        ([1, 2], [1, 2.000001]),
        ([True, 2], [1, 2]),  # booleans are not numbers
        (["1", 2], [1, 2]),  # nor are digits in a string
        ([None, 2], [float("nan"), 2]),
        ([np.float32(0.1), 2], [0.1, 2]),  # a different number
        ([float("inf"), 2], [float("-inf"), 2]),
        (["a", 2], ["a ", 2]),
        ([[1, 2], 3], [[2, 1], 3]),
    ],
)
def test_rows_with_different_values_do_not(left: Any, right: Any) -> None:
    assert row_digest(left, COLS) != row_digest(right, COLS)


def test_without_columns_a_record_keeps_its_names_and_ignores_their_order() -> None:
    assert row_digest({"a": 1, "b": 2}) == row_digest({"b": 2, "a": 1})
    assert row_digest({"a": 1, "b": 2}) != row_digest({"a": 2, "b": 1})
    assert row_digest({"a": 1, "b": 2}) != row_digest([1, 2])
    assert canonical_json({"b": -0.0, "a": [1.0, None]}) == '{"a":[1,null],"b":0}'


def test_other_values_have_one_text_form() -> None:
    when = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    row = [when, date(2026, 12, 1), np.datetime64("2026-12-01T09:30"), pd.NA, "é", float("inf")]
    text = canonical_json(row)
    assert text == (
        '["2026-12-01T09:30:00+00:00","2026-12-01","2026-12-01T09:30",null,"é",Infinity]'
    )
    assert row_digest([pd.Timestamp(when)]) == row_digest([when])
    assert row_digest([np.datetime64("2026-12-01", "ns")]) != row_digest([1764547200000000000])


def test_arrays_and_frames_give_the_keys_of_the_same_rows_as_lists() -> None:
    rows = [[1.0, 2.5], [-0.0, 4.0]]
    expected = make_keys("m", "1", rows, COLS)
    assert make_keys("m", "1", np.array(rows), COLS) == expected
    frame = pd.DataFrame({"b": [2.5, 4.0], "a": [1.0, 0.0]})  # other column order
    assert make_keys("m", "1", frame, COLS) == expected
    records = [{"a": 1, "b": 2.5}, {"b": 4, "a": 0}]
    assert make_keys("m", "1", records, COLS) == expected
    assert make_keys("m", "1", frame) == make_keys("m", "1", [{"b": 2.5, "a": 1}, {"b": 4, "a": 0}])


def test_rows_that_do_not_fit_the_signature_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="no column 'b'"):
        make_keys("m", "1", [{"a": 1}], COLS)
    with pytest.raises(InvalidInputError, match="3 values; the signature has 2"):
        make_keys("m", "1", [[1, 2, 3]], COLS)
    with pytest.raises(InvalidInputError, match="2-D"):
        make_keys("m", "1", np.zeros(3), COLS)
    with pytest.raises(TypeError, match="a row is a mapping or a sequence"):
        row_digest("ab", COLS)
    with pytest.raises(TypeError, match="cannot be built from a set value"):
        row_digest([{1}, 2], COLS)
    with pytest.raises(TypeError, match="string keys"):
        row_digest([{1: 2}, 2], COLS)


def test_every_way_of_writing_numeric_rows_gives_the_same_keys() -> None:
    rng = np.random.default_rng(7)
    special = [
        0.0,
        -0.0,
        1.0,
        -3.0,
        0.1,
        np.nan,
        -np.nan,
        np.inf,
        -np.inf,
        2.0**53,
        2.0**60,
        -(2.0**70),
        1e300,
        5e-324,
    ]
    values = np.concatenate(
        [rng.normal(size=200), rng.integers(-5, 5, 200).astype(float), np.array(special * 10)]
    )
    array = rng.permutation(values).reshape(-1, 4)
    expected = make_keys("m", "1", array.tolist(), None)  # Python floats, one row at a time
    as_ints = [[int(v) if np.isfinite(v) and v == int(v) else v for v in row] for row in array]
    cols = ("a", "b", "c", "d")
    assert make_keys("m", "1", array, cols) == expected  # the vectorised path
    assert make_keys("m", "1", as_ints, cols) == expected
    assert make_keys("m", "1", [dict(zip(cols, r, strict=True)) for r in array], cols) == expected
    assert make_keys("m", "1", pd.DataFrame(array, columns=cols), cols) == expected
    assert make_keys("m", "1", [tuple(np.float64(v) for v in r) for r in array]) == expected
    assert len(set(expected)) == len({tuple(np.nan_to_num(r, nan=7.77e7) + 0.0) for r in array})


@pytest.mark.parametrize("rows", [1, 3, 32])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_finite_arrays_of_any_size_take_the_fast_way_to_the_same_keys(
    rows: int, dtype: Any
) -> None:
    rng = np.random.default_rng(rows)
    array = rng.normal(size=(rows, 5)).astype(dtype)
    array[0, 0], array[-1, -1] = -0.0, 2.0**53  # still the fast way: exact in float64
    array[rows // 2, 1] = 7.0
    expected = [make_keys("m", "1", [r.tolist()])[0] for r in array]
    assert make_keys("m", "1", array) == expected


def test_float32_arrays_and_float32_scalars_agree() -> None:
    array = np.array([[0.1, -0.0], [np.nan, 3.0]], dtype=np.float32)
    assert make_keys("m", "1", array) == make_keys("m", "1", [list(r) for r in array])
    assert make_keys("m", "1", array)[0] != make_keys("m", "1", [[0.1, 0.0]])[0]
    assert make_keys("m", "1", array)[1] == make_keys("m", "1", [[float("nan"), 3]])[0]


def test_big_integers_stay_exact() -> None:
    big = 2**53 + 1  # not a float64: must not merge with 2**53
    assert row_digest([big]) != row_digest([2**53])
    assert (
        row_digest([2**60])
        == row_digest([2.0**60])
        == make_keys("m", "1", np.array([[2.0**60]]))[0].split("/")[-1]
    )
    with pytest.raises(TypeError, match="longdouble"):
        row_digest([np.longdouble(1.5)])
