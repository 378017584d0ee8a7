"""Sticky assignment: pinned hash, stickiness, split accuracy, boundary-only moves, overrides."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from hashlib import blake2b

import pytest

from sibyl.errors import InvalidInputError
from sibyl.routing import POINT_SPACE, TrafficSplit, WeightedVariant, assign, key_point

SALT = "exp-2026"
KEYS = [f"user-{i}" for i in range(100_000)]


def variants(**weights: float) -> list[WeightedVariant]:
    return [WeightedVariant(name, w) for name, w in weights.items()]


def spec_variant(point: int, layout: Sequence[WeightedVariant]) -> str:
    """The documented layout, computed independently: consecutive ranges by cumulative weight."""
    u = point / POINT_SPACE
    total = sum(v.weight for v in layout)
    cumulative = 0.0
    for v in layout:
        cumulative += v.weight / total
        if u < cumulative:
            return v.name
    return layout[-1].name


def test_hash_is_pinned_so_users_keep_their_variant_across_releases() -> None:
    data = f"{len(SALT)}:{SALT}user-1".encode()
    assert key_point("user-1", SALT) == int.from_bytes(blake2b(data, digest_size=8).digest(), "big")
    assert key_point("user-1", SALT) == 13350385057510921594
    assert key_point("42", SALT) == 9919054488873169083
    assert key_point("user-1", "other-salt") != key_point("user-1", SALT)
    # the length prefix keeps salt and key apart
    assert key_point("bc", "a") != key_point("c", "ab")


def test_same_key_always_gets_the_same_variant() -> None:
    layout = variants(control=50, a=30, b=20)
    first = [assign(k, SALT, layout) for k in KEYS[:20_000]]
    again = [TrafficSplit(tuple(layout)).assign(k, SALT) for k in KEYS[:20_000]]
    rebuilt = [assign(k, SALT, variants(control=50, a=30, b=20)) for k in KEYS[:20_000]]
    assert first == again == rebuilt
    assert set(first) == {"control", "a", "b"}


def test_assignment_is_the_same_in_a_fresh_process() -> None:
    code = (
        "from sibyl.routing import assign, WeightedVariant as W;"
        "vs=[W('control', 50), W('a', 30), W('b', 20)];"
        f"print(','.join(assign(f'user-{{i}}', {SALT!r}, vs) for i in range(2000)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},  # str hash() differs from ours
    )
    here = [assign(f"user-{i}", SALT, variants(control=50, a=30, b=20)) for i in range(2000)]
    assert out.stdout.strip().split(",") == here


@pytest.mark.parametrize(
    "weights",
    [
        {"control": 50, "treatment": 50},
        {"control": 90, "canary": 10},
        {"control": 50, "a": 30, "b": 20},
        {"control": 1, "a": 1, "b": 1},
    ],
)
def test_realised_split_over_100k_keys_is_within_one_point_of_target(
    weights: dict[str, float],
) -> None:
    layout = variants(**weights)
    split = TrafficSplit(layout)
    counts = Counter(split.assign(k, SALT) for k in KEYS)
    total = sum(weights.values())
    for name, w in weights.items():
        assert abs(counts[name] / len(KEYS) - w / total) < 0.01, (name, counts)


def test_every_key_lands_where_the_documented_layout_puts_it() -> None:
    for layout in (variants(control=50, a=30, b=20), variants(x=0.1, y=0.0, z=0.9)):
        split = TrafficSplit(layout)
        assert all(split.assign(k, SALT) == spec_variant(key_point(k, SALT), layout) for k in KEYS)


def moved(before: Sequence[WeightedVariant], after: Sequence[WeightedVariant]) -> dict[str, str]:
    old, new = TrafficSplit(before), TrafficSplit(after)
    return {k: new.assign(k, SALT) for k in KEYS if old.assign(k, SALT) != new.assign(k, SALT)}


def test_two_variant_ramp_moves_exactly_the_users_between_the_old_and_new_boundary() -> None:
    got = moved(variants(control=90, canary=10), variants(control=50, canary=50))
    expected = {k for k in KEYS if 0.5 <= key_point(k, SALT) / POINT_SPACE < 0.9}
    assert set(got) == expected
    assert set(got.values()) == {"canary"}  # everyone who moved went to the grown variant
    assert abs(len(got) / len(KEYS) - 0.40) < 0.01


def test_three_variant_change_moves_exactly_the_keys_whose_range_changed_hands() -> None:
    before = variants(control=50, a=30, b=20)
    after = variants(control=40, a=30, b=30)
    got = moved(before, after)
    expected = {
        k
        for k in KEYS
        if spec_variant(key_point(k, SALT), before) != spec_variant(key_point(k, SALT), after)
    }
    assert set(got) == expected
    # control [0, .5) → [0, .4); a [.5, .8) → [.4, .7); b [.8, 1) → [.7, 1)
    points = {k: key_point(k, SALT) / POINT_SPACE for k in got}
    assert all(0.4 <= u < 0.5 or 0.7 <= u < 0.8 for u in points.values())
    assert abs(len(got) / len(KEYS) - 0.20) < 0.01


def test_scaling_every_weight_moves_no_one() -> None:
    assert moved(variants(control=1, a=3), variants(control=25, a=75)) == {}


def test_zero_weight_variant_gets_no_keyed_traffic() -> None:
    split = TrafficSplit(variants(control=1, paused=0, b=1))
    assert "paused" not in {split.assign(k, SALT) for k in KEYS[:20_000]}


def test_different_salts_assign_independently() -> None:
    layout = variants(control=50, treatment=50)
    same = sum(assign(k, "s1", layout) == assign(k, "s2", layout) for k in KEYS)
    assert abs(same / len(KEYS) - 0.5) < 0.01


def test_override_wins_even_for_a_zero_weight_variant() -> None:
    split = TrafficSplit(variants(control=100, shadowed=0))
    assert split.assign("user-1", SALT, override="shadowed") == "shadowed"
    assert assign(None, SALT, variants(control=1, b=1), override="b") == "b"


def test_unknown_override_lists_the_variants() -> None:
    with pytest.raises(InvalidInputError, match="'control', 'a'") as info:
        assign("user-1", SALT, variants(control=1, a=1), override="nope")
    assert info.value.field == "override"
    assert "nope" in str(info.value)


@pytest.mark.parametrize("key", [None, ""])
def test_requests_without_a_key_are_assigned_at_random_by_weight(key: str | None) -> None:
    split = TrafficSplit(variants(control=70, a=20, b=10))
    rng = random.Random(7)
    counts = Counter(split.assign(key, SALT, rng=rng) for _ in range(100_000))
    assert abs(counts["control"] / 100_000 - 0.7) < 0.01
    assert abs(counts["a"] / 100_000 - 0.2) < 0.01
    assert abs(counts["b"] / 100_000 - 0.1) < 0.01
    # seeded: the same draws again
    rng_a, rng_b = random.Random(3), random.Random(3)
    assert [split.assign(key, SALT, rng=rng_a) for _ in range(100)] == [
        split.assign(key, SALT, rng=rng_b) for _ in range(100)
    ]


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ([], "no variants"),
        ([WeightedVariant("a", 1), WeightedVariant("a", 2)], "unique, repeated: a"),
        ([WeightedVariant("a", -1), WeightedVariant("b", 2)], "weights must be >= 0"),
        ([WeightedVariant("a", float("nan"))], "weights must be >= 0"),
        ([WeightedVariant("a", float("inf"))], "weights must be >= 0"),
        ([WeightedVariant("a", 0), WeightedVariant("b", 0)], "all weights are 0"),
        ([WeightedVariant("", 1)], "empty name"),
    ],
)
def test_invalid_layouts_are_refused(layout: list[WeightedVariant], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        TrafficSplit(layout)
    assert info.value.field == "variants"


def test_ranges_cover_the_space_in_order() -> None:
    ranges = TrafficSplit(variants(a=1, b=0, c=3)).ranges()
    assert [r.name for r in ranges] == ["a", "b", "c"]
    assert ranges[0].start == 0 and ranges[-1].stop == POINT_SPACE
    assert all(x.stop == y.start for x, y in itertools.pairwise(ranges))
    assert [r.share for r in ranges] == [0.25, 0.0, 0.75]
