"""DriftMonitor: batch formats, windows (rows and time), thresholds, outputs, threads, reports."""

from __future__ import annotations

import json
import threading

import numpy as np
import pandas as pd
import pytest

from sibyl.errors import InvalidInputError
from sibyl.monitoring.drift import (
    DriftConfig,
    DriftMethod,
    DriftMonitor,
    DriftStatus,
    WindowSpec,
    build_profile,
    compare,
)
from sibyl.monitoring.drift._encode import Encoder
from sibyl.runtime.types import Prediction


def _data(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "a": rng.normal(shift, 1.0, n),
            "b": rng.exponential(2.0, n),
            "city": rng.choice(["paris", "rome", "oslo"], n, p=[0.5, 0.3, 0.2]),
        }
    )


@pytest.fixture(scope="module")
def profile():  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    data = _data(rng, 20_000)
    proba = 1 / (1 + np.exp(-data["a"].to_numpy()))
    return build_profile(
        data, Prediction((proba > 0.5).astype(int), np.column_stack([1 - proba, proba]), (0, 1))
    )


def _outputs(frame: pd.DataFrame, bias: float = 0.0) -> Prediction:
    proba = 1 / (1 + np.exp(-(frame["a"].to_numpy() + bias)))
    return Prediction((proba > 0.5).astype(int), np.column_stack([1 - proba, proba]), (0, 1))


def test_below_min_rows_the_window_is_not_judged(profile) -> None:  # type: ignore[no-untyped-def]
    monitor = DriftMonitor(profile, DriftConfig(min_rows=500))
    rng = np.random.default_rng(1)
    monitor.observe(_data(rng, 499, shift=3.0))  # blatant drift, but too few rows
    report = monitor.report()
    assert report.status is DriftStatus.INSUFFICIENT_DATA and report.rows == 499
    assert all(c.methods == () and not c.drifted for c in report.features)
    assert report.column("a").stats.mean == pytest.approx(3.0, abs=0.2)  # stats still shown
    monitor.observe(_data(rng, 1, shift=3.0))
    assert monitor.report().status is DriftStatus.DRIFT


def test_no_drift_is_ok_and_a_shift_is_flagged_with_effect_sizes(profile) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(2)
    quiet = DriftMonitor(profile, DriftConfig(alpha=0.001))  # the default 5 % is tested on
    frame = _data(rng, 2000)  # 200 streams in test_drift_streams; one window must not fail
    quiet.observe(frame, _outputs(frame))
    assert quiet.report().status is DriftStatus.OK
    loud = DriftMonitor(profile)
    frame = _data(rng, 2000, shift=0.5)
    loud.observe(frame, _outputs(frame))
    report = loud.report()
    assert report.status is DriftStatus.DRIFT
    assert "a" in report.drifted_features and "city" not in report.drifted_features
    assert report.drifted_predictions == ("proba", "prediction")  # prediction drift follows
    a = report.column("a")
    assert a.drifted and a.drift_score == a.method("psi").score  # type: ignore[union-attr]
    mean_z = a.method(DriftMethod.MEAN_Z)
    assert mean_z is not None and mean_z.effect == pytest.approx(0.5, abs=0.08)
    assert mean_z.p_adjusted is not None and mean_z.p_adjusted <= 0.05 and mean_z.drifted
    ks = a.method("ks")
    assert ks is not None and ks.p_value is not None and ks.effect == ks.score
    w = a.method("wasserstein")
    assert w is not None and w.score == pytest.approx(0.5, abs=0.08) and w.p_value is None
    assert report.column("city").method("chi2") is not None
    assert report.column("city").method("ks") is None  # KS is for numeric columns only


def test_categorical_unseen_values_go_to_other(profile) -> None:  # type: ignore[no-untyped-def]
    monitor = DriftMonitor(profile)
    rng = np.random.default_rng(3)
    frame = _data(rng, 2000)
    frame.loc[:599, "city"] = "tokyo"  # never seen in the reference
    monitor.observe(frame)
    city = monitor.report().column("city")
    assert city.stats.other_share == pytest.approx(0.3)
    assert city.stats.reference_other_share == 0.0
    assert city.drifted and city.method("chi2").drifted  # type: ignore[union-attr]


def test_nulls_and_missing_columns_count_as_null(profile) -> None:  # type: ignore[no-untyped-def]
    monitor = DriftMonitor(profile, DriftConfig(min_rows=10))
    frame = pd.DataFrame({"a": [np.nan, np.inf, 1.0, None] * 5, "city": [None, "rome"] * 10})
    monitor.observe(frame)  # no column "b" at all
    report = monitor.report()
    assert report.column("a").stats.null_share == pytest.approx(0.75)
    assert report.column("b").stats.null_share == 1.0
    assert report.column("city").stats.null_share == 0.5
    assert report.column("b").drifted  # a column gone missing is drift (null share 0 → 1)


def test_every_batch_format_gives_the_same_state(profile) -> None:  # type: ignore[no-untyped-def]
    encoder = Encoder(profile, columns=["city", "b", "a"])
    frame = _data(np.random.default_rng(4), 300)
    frame.loc[::7, "a"] = np.nan
    outputs = _outputs(frame.fillna(0.0))
    expected = Encoder(profile).encode(frame, outputs)[0][1]
    as_array = frame[["city", "b", "a"]].to_numpy(dtype=object)
    for batch in (frame, as_array, frame.to_dict(orient="list"), frame.to_dict(orient="records")):
        enc = encoder if batch is as_array else Encoder(profile)
        np.testing.assert_allclose(enc.encode(batch, outputs)[0][1], expected, rtol=1e-12)


def test_small_and_large_batches_bin_identically(profile) -> None:  # type: ignore[no-untyped-def]
    encoder = Encoder(profile)
    frame = _data(np.random.default_rng(5), 1000)
    frame.loc[::13, "b"] = np.nan
    whole = encoder.encode(frame)[0][1]  # searchsorted
    for size in (10, 50):  # broadcast compare, matrix-product count
        parts = sum(encoder.encode(frame.iloc[i : i + size])[0][1] for i in range(0, 1000, size))
        np.testing.assert_allclose(parts, whole, rtol=1e-10, atol=1e-9)
    chunks = encoder.encode(frame, chunk=300)  # a batch split across buckets
    assert [rows for rows, _ in chunks] == [300, 300, 300, 100]
    np.testing.assert_allclose(sum(v for _, v in chunks), whole, rtol=1e-10, atol=1e-9)


def test_row_window_slides_and_splits_big_batches(profile) -> None:  # type: ignore[no-untyped-def]
    config = DriftConfig(window=WindowSpec(rows=1000, buckets=10), min_rows=500)
    monitor = DriftMonitor(profile, config)
    rng = np.random.default_rng(6)
    monitor.observe(_data(rng, 5000, shift=2.0))  # split into buckets of 100 rows
    assert monitor.rows() == 1000
    monitor.observe(_data(rng, 1000))  # pushes every drifted row out
    assert monitor.rows() == 1000
    assert monitor.report().column("a").stats.mean == pytest.approx(0.1, abs=0.1)
    for _ in range(10):
        monitor.observe(_data(rng, 32))
    assert 900 <= monitor.rows() <= 1000


def test_time_window_expires_old_buckets() -> None:
    rng = np.random.default_rng(7)
    profile = build_profile(_data(rng, 5000))
    now = [1_000.0]
    config = DriftConfig(window=WindowSpec(seconds=60, buckets=6), min_rows=100)
    monitor = DriftMonitor(profile, config, clock=lambda: now[0])
    monitor.observe(_data(rng, 300, shift=2.0))
    now[0] += 30
    monitor.observe(_data(rng, 300))
    report = monitor.report()
    assert report.rows == 600 and report.start == 1000.0 and report.end == 1030.0
    now[0] += 40  # the first bucket is now older than 60 s
    assert monitor.rows() == 300 and monitor.report().column("a").drifted is False
    now[0] += 1_000
    assert monitor.report().status is DriftStatus.INSUFFICIENT_DATA
    monitor.observe(_data(rng, 7))
    now[0] -= 20  # a clock stepping back neither wipes the newest bucket nor reopens old ones
    monitor.observe(_data(rng, 5))
    assert monitor.rows(now=now[0] + 20) == 12


def test_concurrent_observe_loses_nothing(profile) -> None:  # type: ignore[no-untyped-def]
    config = DriftConfig(window=WindowSpec(rows=1_000_000, buckets=4))
    monitor = DriftMonitor(profile, config)
    rng = np.random.default_rng(8)
    batches = [_data(rng, int(n)) for n in rng.integers(1, 40, 400)]
    start = threading.Barrier(8)

    def work(part: list[pd.DataFrame]) -> None:
        start.wait()
        for batch in part:
            monitor.observe(batch, _outputs(batch))

    threads = [threading.Thread(target=work, args=(batches[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    serial = DriftMonitor(profile, config)
    for batch in batches:
        serial.observe(batch, _outputs(batch))
    total = sum(len(b) for b in batches)
    assert monitor.rows() == serial.rows() == total
    concurrent, sequential = monitor.report(), serial.report()
    for a, b in zip(
        concurrent.features + concurrent.predictions,
        sequential.features + sequential.predictions,
        strict=True,
    ):
        assert a.stats.rows == b.stats.rows == total
        for x, y in zip(a.methods, b.methods, strict=True):  # sums in another order: ±1 ulp
            assert x.score == pytest.approx(y.score, rel=1e-9, abs=1e-12)


def test_thresholds_alpha_and_fdr_scope_are_configurable(profile) -> None:  # type: ignore[no-untyped-def]
    frame = _data(np.random.default_rng(9), 2000, shift=0.15)
    strict = compare(profile, frame, config=DriftConfig(thresholds={"psi": 0.001}))
    psi = strict.column("a").method("psi")
    assert psi is not None and psi.threshold == 0.001 and psi.drifted
    lenient = compare(profile, frame, config=DriftConfig(alpha=1e-12, methods=("ks", "psi")))
    assert lenient.column("a").method("ks").drifted is False  # type: ignore[union-attr]
    floor = compare(profile, frame, config=DriftConfig(min_effect={"mean_z": 0.5}))
    assert floor.column("a").method("mean_z").drifted is False  # type: ignore[union-attr]
    per_method = compare(profile, frame, config=DriftConfig(fdr_scope="method"))
    window = compare(profile, frame)
    ks_m, ks_w = (r.column("b").method("ks") for r in (per_method, window))
    assert ks_m.p_adjusted <= ks_w.p_adjusted + 1e-12  # type: ignore[union-attr,operator]


def test_report_is_json_and_feeds_the_gauge(profile) -> None:  # type: ignore[no-untyped-def]
    monitor = DriftMonitor(profile)
    frame = _data(np.random.default_rng(10), 2000, shift=0.3)
    monitor.observe(frame, _outputs(frame))
    report = monitor.report()
    text = json.dumps(report.to_dict(), allow_nan=False)
    data = json.loads(text)
    assert data["status"] == "drift" and data["features"][0]["methods"]["psi"]["threshold"] == 0.2
    samples = report.score_samples()
    assert ("a", "psi", report.column("a").drift_score) in samples
    assert any(f == "output:proba" for f, _, _ in samples)
    assert {m for _, m, _ in samples} == {m.value for m in DriftMethod}


def test_output_classes_in_another_order_are_aligned(profile) -> None:  # type: ignore[no-untyped-def]
    frame = _data(np.random.default_rng(11), 2000)
    outputs = _outputs(frame)
    swapped = Prediction(outputs.predictions, outputs.probabilities[:, ::-1], (1, 0))  # type: ignore[index]
    a = Encoder(profile).encode(frame, outputs)[0][1]
    b = Encoder(profile).encode(frame, swapped)[0][1]
    np.testing.assert_allclose(a, b)


def test_bad_input_raises_invalid_input(profile) -> None:  # type: ignore[no-untyped-def]
    monitor = DriftMonitor(profile)
    with pytest.raises(InvalidInputError, match="2-D"):
        monitor.observe(np.zeros(3))
    with pytest.raises(InvalidInputError, match="rows"):
        monitor.observe(_data(np.random.default_rng(0), 5), np.zeros((4, 2)))
    with pytest.raises(InvalidInputError):
        monitor.observe("a,b,c")
    assert monitor.rows() == 0


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"window": {"rows": 5, "buckets": 10}}, "window.rows"),
        ({"window": {"rows": 100, "seconds": 60}}, "window"),
        ({"window": {"minutes": 5}}, "window.minutes"),
        ({"methods": ["psi", "entropy"]}, "methods"),
        ({"thresholds": {"ks": 0.01}}, "thresholds"),
        ({"thresholds": {"psi": -1}}, "thresholds.psi"),
        ({"alpha": 1.5}, "alpha"),
        ({"score_method": "ks", "methods": ["psi"]}, "score_method"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_config_from_dict_validates(settings: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidInputError) as err:
        DriftConfig.from_dict(settings)
    assert err.value.field == field


def test_config_from_dict_round_trips_overrides() -> None:
    config = DriftConfig.from_dict(
        {
            "window": {"seconds": 300},
            "thresholds": {"psi": 0.25},
            "methods": ["psi", "ks"],
            "min_rows": 200,
        }
    )
    assert config.window.seconds == 300 and config.window.rows is None
    assert config.threshold(DriftMethod.PSI) == 0.25 and config.threshold(DriftMethod.KS) == 0.05
    assert config.methods == (DriftMethod.PSI, DriftMethod.KS)
    assert DriftConfig.from_dict(config.to_dict()).to_dict() == config.to_dict()


def test_batches_without_outputs_leave_prediction_drift_unjudged(profile) -> None:  # type: ignore[no-untyped-def]
    monitor = DriftMonitor(profile, DriftConfig(min_rows=500, alpha=0.001))
    rng = np.random.default_rng(12)
    monitor.observe(_data(rng, 1500))  # e.g. a caller that has no outputs at hand
    report = monitor.report()
    assert report.feature_status is DriftStatus.OK and report.status is DriftStatus.OK
    assert report.prediction_status is DriftStatus.INSUFFICIENT_DATA
    assert all(c.stats.rows == 0 and c.methods == () for c in report.predictions)
    frame = _data(rng, 600)
    monitor.observe(frame, _outputs(frame))
    report = monitor.report()
    assert report.column("output:proba").stats.rows == 600
    assert report.prediction_status is DriftStatus.OK and 1800 <= report.rows <= 2000
