"""Search-space specs: JSON, YAML and dicts validate into typed parameters; every mistake
names the field; grids are finite and complete."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from sibyl.errors import InvalidInputError
from sibyl.training import load_space, parse_space

SPEC = {
    "n_estimators": {"type": "int", "low": 10, "high": 100, "step": 10},
    "learning_rate": {"type": "loguniform", "low": 0.001, "high": 0.3},
    "subsample": {"type": "float", "low": 0.5, "high": 1.0},
    "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
}


def test_yaml_json_and_dict_give_the_same_space(tmp_path: Path) -> None:
    import json

    import yaml

    (tmp_path / "s.yaml").write_text(
        yaml.safe_dump({"estimator": "rf", "params": SPEC}, sort_keys=False)
    )
    (tmp_path / "s.json").write_text(json.dumps(SPEC))
    from_yaml = load_space(tmp_path / "s.yaml")
    assert from_yaml.estimator == "rf"
    assert (
        from_yaml.params == load_space(str(tmp_path / "s.json")).params == parse_space(SPEC).params
    )
    kinds = {p.name: (p.kind, p.log) for p in from_yaml.params}
    assert kinds == {
        "n_estimators": ("int", False),
        "learning_rate": ("float", True),
        "subsample": ("float", False),
        "criterion": ("categorical", False),
    }


def test_sampled_values_respect_the_spec() -> None:
    space = parse_space(SPEC)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        params = space.suggest(study.ask())
        assert params["n_estimators"] in range(10, 101, 10)
        assert 0.001 <= params["learning_rate"] <= 0.3
        assert params["criterion"] in ("gini", "entropy")


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"x": {"type": "integer", "low": 1, "high": 2}}, "space.x.type"),
        ({"x": {"type": "int", "low": 5, "high": 2}}, "space.x.low"),
        ({"x": {"type": "int", "low": 1.5, "high": 2}}, "space.x.low"),
        ({"x": {"type": "float", "low": "a", "high": 2}}, "space.x.low"),
        ({"x": {"type": "float", "low": 0, "high": 2, "log": True}}, "space.x.low"),
        ({"x": {"type": "float", "low": 1, "high": 2, "log": True, "step": 0.1}}, "space.x.step"),
        ({"x": {"type": "int", "low": 1, "high": 9, "step": 0}}, "space.x.step"),
        ({"x": {"type": "categorical", "choices": []}}, "space.x.choices"),
        ({"x": {"type": "categorical", "choices": [{"a": 1}]}}, "space.x.choices"),
        ({"x": {"type": "int", "low": 1, "high": 2, "lo": 3}}, "space.x.lo"),
        ({}, "space.params"),
    ],
)
def test_errors_name_the_field(spec: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_space(spec)
    assert caught.value.field == field


def test_bad_text_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_space(tmp_path / "nope.yaml")
    with pytest.raises(InvalidInputError, match="mapping"):
        load_space("- just\n- a list\n")


def test_grid_covers_every_combination() -> None:
    space = parse_space(
        {
            "depth": {"type": "int", "low": 1, "high": 3},
            "lr": {"type": "float", "low": 0.01, "high": 1.0, "log": True, "grid_points": 3},
            "kind": {"type": "categorical", "choices": ["a", "b"]},
            "c": {"type": "float", "low": 0, "high": 1, "grid": [0.25]},
        }
    )
    grid = space.grid()
    assert len(grid) == 3 * 3 * 2 * 1
    assert {g["depth"] for g in grid} == {1, 2, 3}
    assert sorted({round(g["lr"], 6) for g in grid}) == [0.01, 0.1, 1.0]
    assert len({tuple(sorted(g.items())) for g in grid}) == len(grid)


def test_importing_training_is_cheap() -> None:
    import subprocess
    import sys

    code = (
        "import sys, sibyl.training; "
        "print([m for m in ('mlflow', 'optuna', 'torch', 'fastapi', 'sklearn') "
        "if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
