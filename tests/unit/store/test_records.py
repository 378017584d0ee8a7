"""Pure parts of the store: status transitions, record validation, percentiles."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sibyl.errors import ConflictError, InvalidInputError
from sibyl.store import ExperimentStatus, NewFeedback, Variant, allowed_from
from sibyl.store._aggregates import percentile
from sibyl.store._types import check_transition

S = ExperimentStatus
ALLOWED = {
    (S.DRAFT, S.RUNNING),
    (S.DRAFT, S.STOPPED),
    (S.RUNNING, S.PAUSED),
    (S.RUNNING, S.STOPPED),
    (S.PAUSED, S.RUNNING),
    (S.PAUSED, S.STOPPED),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_transitions(current: ExperimentStatus, target: ExperimentStatus) -> None:
    if current == target or (current, target) in ALLOWED:
        check_transition("e", current, target)
        assert current == target or current in allowed_from(target)
    else:
        with pytest.raises(ConflictError, match=f"'e' is {current}; it cannot become {target}"):
            check_transition("e", current, target)


@pytest.mark.parametrize(
    "variant",
    [
        Variant("a", "m"),
        Variant("a", "m", version="1", alias="production"),
        Variant("a", "m", version="1", weight=-0.1),
        Variant("a", "m", alias="x", weight=float("inf")),
    ],
)
def test_invalid_variants(variant: Variant) -> None:
    with pytest.raises(InvalidInputError, match="'a'"):
        variant.validate()


def test_valid_variants() -> None:
    Variant("a", "m", version="1", weight=0.0).validate()
    Variant("b", "m", alias="production", weight=3).validate()


@pytest.mark.parametrize(
    ("item", "field"),
    [
        (NewFeedback("m", value=1.0), "request_id"),
        (NewFeedback("m", request_id="r"), "value"),
        (NewFeedback("m", request_id="r", value=1.0, experiment_id=1), "variant"),
        (NewFeedback("m", request_id="r", value=1.0, variant="a"), "variant"),
    ],
)
def test_invalid_feedback(item: NewFeedback, field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        item.validate()
    assert caught.value.field == field


def test_valid_feedback() -> None:
    NewFeedback("m", routing_key="u", label="churned").validate()
    NewFeedback("m", request_id="r", outcome={"ok": True}, experiment_id=1, variant="a").validate()


@pytest.mark.parametrize("size", [1, 2, 3, 10, 101, 1000])
def test_percentile_matches_numpy(size: int) -> None:
    values = sorted(np.random.default_rng(size).exponential(10.0, size).tolist())
    for q in (0, 50, 95, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
