"""Sticky assignment of a request to a variant: a pure function of (routing key, salt, weights).

How a key is placed
    The key's *point* is the first 8 bytes of ``blake2b(f"{len(salt)}:{salt}{key}")`` read as a
    big-endian integer in ``[0, 2**64)`` (the length prefix keeps ``("ab", "c")`` and
    ``("a", "bc")`` apart). The variants, in the order given, own consecutive ranges of that
    space: variant ``i`` owns ``[C(i-1), C(i))`` with ``C(i) = floor(2**64 · (w_0 + … + w_i) / W)``
    computed exactly (weights converted to fractions). A key gets the variant whose range holds
    its point. Nothing is stored: the same key, salt and weights give the same variant on every
    replica, after every restart, in every sibyl version (the hash is pinned by a test).

Which keys move when the weights change
    Exactly the keys whose point lies in variant A's old range and in another variant B's new
    range; every other key keeps its variant. Because the ranges are consecutive, a changed
    weight moves the *boundaries* after it, and only the points between a boundary's old and new
    position change hands. For two variants going from ``(w, 1-w)`` to ``(w', 1-w')``, the keys
    with point in ``[min(w, w'), max(w, w'))`` (as a fraction of the space) move — ``|w - w'|``
    of the users, all towards the variant that grew. Multiplying every weight by the same factor
    moves no one. With three or more variants, changing an early weight also shifts the later
    boundaries, so keep variant order fixed and append new variants at the end. A new salt
    reshuffles everyone: use one salt per experiment.

Without a key the point is drawn at random (``rng.getrandbits(64)``) from the same layout, so the
traffic still follows the weights. An override (the QA header) naming a known variant wins, even
a variant of weight 0.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from hashlib import blake2b

from sibyl.errors import InvalidInputError

POINT_SPACE = 1 << 64
"""Number of distinct points a key can hash to; a key's point is in ``[0, POINT_SPACE)``."""

_RANDOM = random.Random()


@dataclass(frozen=True, slots=True)
class WeightedVariant:
    """A variant's name and its traffic weight (any non-negative scale; only ratios matter)."""

    name: str
    weight: float


@dataclass(frozen=True, slots=True)
class VariantRange:
    """The points ``[start, stop)`` a variant owns; empty (``start == stop``) for weight 0."""

    name: str
    start: int
    stop: int

    @property
    def share(self) -> float:
        """Fraction of all points (the target traffic share)."""
        return (self.stop - self.start) / POINT_SPACE


def key_point(routing_key: str, salt: str) -> int:
    """The point in ``[0, POINT_SPACE)`` that ``routing_key`` hashes to under ``salt``."""
    data = f"{len(salt)}:{salt}{routing_key}".encode()
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "big")


class TrafficSplit:
    """The layout of a list of weighted variants over the point space, computed once.

    Immutable after construction and safe to share between threads and tasks. Construction
    raises :class:`InvalidInputError` (``field="variants"``) when there is no variant, a name is
    empty or repeated, a weight is negative or not finite, or all weights are 0.
    """

    __slots__ = ("_bounds", "_names", "variants")

    def __init__(self, variants: Sequence[WeightedVariant]) -> None:
        _validate(variants)
        self.variants: tuple[WeightedVariant, ...] = tuple(variants)
        self._names = tuple(v.name for v in variants)
        self._bounds = _bounds([v.weight for v in variants])

    @property
    def names(self) -> tuple[str, ...]:
        """Variant names in layout order."""
        return self._names

    def ranges(self) -> tuple[VariantRange, ...]:
        """Each variant's range of points, in layout order."""
        starts = (0, *self._bounds[:-1])
        return tuple(
            VariantRange(n, s, e) for n, s, e in zip(self._names, starts, self._bounds, strict=True)
        )

    def variant_at(self, point: int) -> str:
        """The variant owning ``point`` (``0 <= point < POINT_SPACE``)."""
        return self._names[bisect_right(self._bounds, point)]

    def assign(
        self,
        routing_key: str | None,
        salt: str,
        *,
        override: str | None = None,
        rng: random.Random | None = None,
    ) -> str:
        """The variant for one request.

        ``override`` (a variant name, from the QA header) wins when set; an unknown name raises
        :class:`InvalidInputError` (``field="override"``) listing the variants. Otherwise a
        non-empty ``routing_key`` is placed by its salted hash (sticky), and a missing or empty
        key by a random point drawn from ``rng`` (a shared ``random.Random`` by default).
        """
        if override is not None:
            return self._checked(override)
        if routing_key:
            return self.variant_at(key_point(routing_key, salt))
        return self.variant_at((rng or _RANDOM).getrandbits(64))

    def _checked(self, override: str) -> str:
        if override in self._names:
            return override
        known = ", ".join(repr(n) for n in self._names)
        raise InvalidInputError(
            f"Override {override!r} names no variant of this experiment; use one of {known}",
            field="override",
        )

    def __repr__(self) -> str:
        parts = ", ".join(f"{v.name}={v.weight:g}" for v in self.variants)
        return f"TrafficSplit({parts})"


def assign(
    routing_key: str | None,
    salt: str,
    variants: Sequence[WeightedVariant],
    *,
    override: str | None = None,
    rng: random.Random | None = None,
) -> str:
    """The variant for one request; see :meth:`TrafficSplit.assign` for the rules.

    A pure function of its arguments (except the random draw for a missing key). Layouts are
    cached by the variants' value, so calling it with the same weights costs a hash and a
    bisection; hold a :class:`TrafficSplit` to skip even the cache lookup.
    """
    return _split(tuple(variants)).assign(routing_key, salt, override=override, rng=rng)


@lru_cache(maxsize=1024)
def _split(variants: tuple[WeightedVariant, ...]) -> TrafficSplit:
    return TrafficSplit(variants)


def _validate(variants: Sequence[WeightedVariant]) -> None:
    def bad(problem: str) -> InvalidInputError:
        return InvalidInputError(f"Invalid traffic split: {problem}", field="variants")

    if not variants:
        raise bad("it has no variants; give at least one name with a weight")
    names = [v.name for v in variants]
    if any(not n for n in names):
        raise bad("a variant has an empty name")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise bad(f"variant names must be unique, repeated: {', '.join(dupes)}")
    for v in variants:
        if not math.isfinite(v.weight) or v.weight < 0:
            raise bad(f"variant {v.name!r} has weight {v.weight!r}; weights must be >= 0")
    if not any(v.weight > 0 for v in variants):
        raise bad("all weights are 0; give at least one variant a positive weight")


def _bounds(weights: Sequence[float]) -> tuple[int, ...]:
    """Exclusive upper bound of each variant's range; the last one is ``POINT_SPACE``."""
    exact = [Fraction(w) for w in weights]
    total = sum(exact, Fraction(0))
    bounds: list[int] = []
    cumulative = Fraction(0)
    for w in exact:
        cumulative += w
        bounds.append(math.floor(cumulative * POINT_SPACE / total))
    return tuple(bounds)
