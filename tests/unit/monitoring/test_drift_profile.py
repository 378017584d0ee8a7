"""Reference profiles: column kinds, bins, top-k + other, nulls, outputs, exact JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sibyl.errors import InvalidInputError
from sibyl.monitoring.drift import (
    CategoricalProfile,
    NumericProfile,
    OutputKind,
    ReferenceProfile,
    build_profile,
)
from sibyl.runtime.types import Prediction


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 5000
    x = rng.normal(3.0, 2.0, n)
    x[:250] = np.nan  # 5 % nulls
    return pd.DataFrame(
        {
            "x": x,
            "count": rng.poisson(2.0, n),
            "city": rng.choice(["paris", "rome", "oslo", "lima"], n, p=[0.4, 0.3, 0.2, 0.1]),
            "flag": rng.random(n) < 0.3,
            "when": pd.date_range("2026-01-01", periods=n, freq="min"),
            "zip": rng.integers(1000, 1010, n),
        }
    )


def test_column_kinds_are_inferred_and_overridable(frame: pd.DataFrame) -> None:
    profile = build_profile(frame, categorical=["zip"])
    kinds = {c.name: type(c) for c in profile.features}
    assert kinds == {
        "x": NumericProfile,
        "count": NumericProfile,
        "city": CategoricalProfile,
        "flag": CategoricalProfile,
        "zip": CategoricalProfile,
    }
    assert profile.skipped == ("when",)  # datetimes are not profiled
    assert build_profile(frame, exclude=["zip", "when"]).feature_names == (
        "x",
        "count",
        "city",
        "flag",
    )


def test_numeric_profile_has_quantile_bins_open_ends_and_moments(frame: pd.DataFrame) -> None:
    x = build_profile(frame[["x"]], bins=20).feature("x")
    assert isinstance(x, NumericProfile)
    finite = frame["x"].dropna().to_numpy()
    assert len(x.edges) == 21 and len(x.counts) == 23  # null, below, 20 bins, above
    assert x.counts[0] == 250 and x.null_share == pytest.approx(0.05)
    assert x.counts[1] == 0 and x.counts[-1] == 0  # nothing below the min or above the max
    assert x.edges[0] == finite.min() and x.edges[-1] > finite.max()
    assert all(abs(c - len(finite) / 20) <= 1 for c in x.counts[2:-1])  # equal-mass bins
    assert x.mean == pytest.approx(finite.mean()) and x.std == pytest.approx(finite.std(ddof=1))
    assert x.quantiles["p50"] == pytest.approx(np.median(finite))
    assert sum(x.proportions) == pytest.approx(1.0)


def test_repeated_values_collapse_bins() -> None:
    p = build_profile(pd.DataFrame({"k": [1, 1, 1, 2, 2, 3] * 100, "c": [7.0] * 600}))
    k, c = p.feature("k"), p.feature("c")
    assert isinstance(k, NumericProfile)
    # edges are observed values, the atom at the maximum has a bin of its own
    assert k.edges == (1.0, 2.0, 3.0, np.nextafter(3.0, np.inf))
    assert k.counts == (0, 0, 300, 200, 100, 0)
    assert isinstance(c, NumericProfile) and len(c.edges) == 2 and c.counts[2] == 600


def test_categorical_keeps_top_k_values_and_an_other_bucket(frame: pd.DataFrame) -> None:
    city = build_profile(frame[["city"]], top_k=2).feature("city")
    assert isinstance(city, CategoricalProfile)
    assert city.values == ("paris", "rome")
    counts = frame["city"].value_counts()
    assert city.counts == (0, counts["oslo"] + counts["lima"], counts["paris"], counts["rome"])


def test_nulls_none_nan_and_inf_count_as_null() -> None:
    data = pd.DataFrame(
        {
            "num": [1.0, np.nan, np.inf, -np.inf, 2.0, None],
            "cat": ["a", None, np.nan, "b", pd.NA, "a"],
        }
    )
    p = build_profile(data)
    assert p.feature("num").counts[0] == 4
    assert p.feature("cat").counts[0] == 3
    assert p.feature("cat").values == ("a", "b")


def test_a_numeric_column_without_finite_values_becomes_categorical() -> None:
    p = build_profile(pd.DataFrame({"empty": [np.nan] * 10, "x": np.arange(10.0)}))
    empty = p.feature("empty")
    assert isinstance(empty, CategoricalProfile) and empty.values == () and empty.counts == (10, 0)


def test_outputs_of_a_binary_classifier() -> None:
    rng = np.random.default_rng(1)
    x = pd.DataFrame({"a": rng.normal(size=300)})
    proba = rng.random(300)
    pred = Prediction(
        np.where(proba > 0.5, "yes", "no"), np.column_stack([1 - proba, proba]), ("no", "yes")
    )
    p = build_profile(x, pred)
    assert p.output_kind is OutputKind.PROBABILITIES and p.classes == ("no", "yes")
    assert [c.name for c in p.outputs] == ["proba", "prediction"]
    assert isinstance(p.outputs[0], NumericProfile) and p.outputs[0].mean == pytest.approx(
        proba.mean()
    )
    assert set(p.outputs[1].values) == {"yes", "no"}  # type: ignore[union-attr]


def test_outputs_of_multiclass_regression_and_label_models() -> None:
    rng = np.random.default_rng(2)
    x = pd.DataFrame({"a": rng.normal(size=200)})
    multi = build_profile(x, rng.dirichlet(np.ones(3), 200))
    assert [c.name for c in multi.outputs] == ["proba[0]", "proba[1]", "proba[2]", "prediction"]
    assert build_profile(x, rng.normal(size=200)).output_kind is OutputKind.VALUES
    labels = build_profile(x, rng.choice(["a", "b"], 200))
    assert labels.output_kind is OutputKind.LABELS
    assert isinstance(labels.outputs[0], CategoricalProfile)
    two = build_profile(x, rng.normal(size=(200, 2)), output_kind="values")
    assert [c.name for c in two.outputs] == ["prediction[0]", "prediction[1]"]


def test_json_round_trip_is_exact(frame: pd.DataFrame) -> None:
    rng = np.random.default_rng(3)
    profile = build_profile(
        frame, rng.dirichlet(np.ones(3), len(frame)), classes=["a", "b", "c"], categorical=["zip"]
    )
    text = profile.to_json()
    assert ReferenceProfile.from_json(text) == profile
    again = ReferenceProfile.from_dict(json.loads(text))
    assert again.to_json() == text  # byte-identical on a second trip
    data = json.loads(text)
    assert data["format"] == "sibyl.drift.profile" and data["format_version"] == 1


def test_arrays_with_column_names(frame: pd.DataFrame) -> None:
    values = frame[["x", "count"]].to_numpy()
    named = build_profile(values, columns=["x", "count"])
    assert named.feature_names == ("x", "count")
    assert build_profile(values).feature_names == ("0", "1")
    with pytest.raises(InvalidInputError, match="column names"):
        build_profile(values, columns=["only-one"])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(format_version=2), "format_version"),
        (lambda d: d.update(format="other"), "format"),
        (lambda d: d["features"][0].update(counts=[1, 2]), "features[0].counts"),
        (lambda d: d["features"][0].update(edges=[2.0, 1.0]), "features[0].edges"),
        (lambda d: d["features"][0].update(kind="text"), "features[0].kind"),
        (lambda d: d["features"][1].update(values=[{"nested": 1}]), "features[1].values"),
        (lambda d: d.update(features=[]), "features"),
    ],
)
def test_invalid_profiles_name_the_field(change, field: str) -> None:  # type: ignore[no-untyped-def]
    data = build_profile(pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})).to_dict()
    change(data)
    with pytest.raises(InvalidInputError) as err:
        ReferenceProfile.from_dict(data)
    assert err.value.field == field


def test_bad_arguments_are_refused() -> None:
    data = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(InvalidInputError, match="no rows"):
        build_profile(data.iloc[:0])
    with pytest.raises(InvalidInputError, match="bins"):
        build_profile(data, bins=1)
    with pytest.raises(InvalidInputError, match="both numeric and categorical"):
        build_profile(data, numeric=["x"], categorical=["x"])
    with pytest.raises(InvalidInputError, match="output_kind"):
        build_profile(data, [0.1, 0.2], output_kind="scores")
    with pytest.raises(InvalidInputError, match="JSON"):
        ReferenceProfile.from_json("{not json")
