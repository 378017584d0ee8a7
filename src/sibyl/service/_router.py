"""Experiment routing as pure functions: which variant answers one prediction request.

The :class:`ExperimentService` keeps a :data:`RoutingSnapshot` (model → its running experiment)
and swaps it atomically; :func:`route` reads one snapshot and decides, with no I/O and no state,
so every replica holding the same snapshot routes a routing key the same way:

* a pinned request (explicit version or alias) is never routed — it bypasses experiments;
* a model without a running experiment is not routed (one dict lookup);
* an override (the ``X-Variant`` QA header) naming a variant wins, an unknown one is a 400
  listing the variants;
* otherwise the salted hash of the routing key picks the variant by weight (sticky), and a
  request without a key gets a random variant by weight (see :mod:`sibyl.routing`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sibyl.errors import InvalidInputError
from sibyl.routing import TrafficSplit, WeightedVariant
from sibyl.store import ROUTED_KINDS, Experiment, ExperimentKind, ExperimentStatus, Variant


@dataclass(frozen=True, slots=True)
class RunningExperiment:
    """What routing needs of one running experiment, computed once per snapshot."""

    id: int
    name: str
    model: str
    salt: str
    split: TrafficSplit
    variants: Mapping[str, Variant]
    kind: ExperimentKind = ExperimentKind.AB
    config: Mapping[str, Any] = field(default_factory=dict)
    """The experiment's stored ``routing`` JSON (kind-specific settings, e.g. canary steps)."""

    @classmethod
    def of(cls, exp: Experiment) -> RunningExperiment:
        """The routing view of a stored experiment (variants in their stored order)."""
        split = TrafficSplit([WeightedVariant(v.name, v.weight) for v in exp.variants])
        variants = {v.name: v for v in exp.variants}
        return cls(
            exp.id, exp.name, exp.model, exp.salt, split, variants, exp.kind, dict(exp.routing)
        )


RoutingSnapshot = Mapping[str, RunningExperiment]
"""Model name → its running experiment; replaced as a whole, never mutated."""


@dataclass(frozen=True, slots=True)
class Route:
    """The variant chosen for one request and what to predict with."""

    experiment_id: int
    experiment: str
    variant: str
    model: str
    ref: str
    """The variant's version number or alias."""
    overridden: bool = False
    """Chosen by the QA override rather than by the split (not counted in the results)."""


def build_snapshot(experiments: Iterable[Experiment]) -> dict[str, RunningExperiment]:
    """The snapshot of the RUNNING traffic-splitting experiments (``ROUTED_KINDS``) among
    ``experiments``; when a model has several (only possible if written around the service), the
    earliest started wins."""
    snapshot: dict[str, RunningExperiment] = {}
    running = [
        e for e in experiments if e.status is ExperimentStatus.RUNNING and e.kind in ROUTED_KINDS
    ]
    for exp in sorted(running, key=lambda e: (e.started_at or e.created_at, e.id)):
        if exp.model not in snapshot and any(v.weight > 0 for v in exp.variants):
            snapshot[exp.model] = RunningExperiment.of(exp)
    return snapshot


def route(
    snapshot: RoutingSnapshot,
    model: str,
    ref: str | None,
    routing_key: str | None,
    override: str | None = None,
    rng: random.Random | None = None,
) -> Route | None:
    """The route of one request, or ``None`` when no experiment applies (see module docstring).

    Raises :class:`InvalidInputError` (``field="X-Variant"``) for an override that names no
    variant of the running experiment.
    """
    if ref is not None:
        return None
    exp = snapshot.get(model)
    if exp is None:
        return None
    return choose(exp, routing_key, override, rng)


def choose(
    exp: RunningExperiment,
    routing_key: str | None,
    override: str | None = None,
    rng: random.Random | None = None,
) -> Route:
    """The variant of ``exp`` for a routing key (or the override); pure but for the random draw
    of a request without a key."""
    try:
        name = exp.split.assign(routing_key, exp.salt, override=override, rng=rng)
    except InvalidInputError:
        known = ", ".join(repr(n) for n in exp.split.names)
        raise InvalidInputError(
            f"X-Variant {override!r} names no variant of experiment '{exp.name}'; "
            f"use one of {known}",
            field="X-Variant",
        ) from None
    variant = exp.variants[name]
    ref = variant.version if variant.version is not None else variant.alias
    assert ref is not None  # Variant.validate: exactly one of version / alias
    return Route(exp.id, exp.name, name, variant.model, ref, override is not None)
