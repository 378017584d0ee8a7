"""BanditBook: Thompson-sampling routing for running bandit experiments, fed by feedback.

A bandit experiment (kind ``bandit``) is a routed experiment whose variants are arms. Its
``config`` (validated by :func:`validate_bandit`, stored as the experiment's ``routing``)::

    {"floor": 0.05,          # least traffic share of every arm (≤ 1 / arms)
     "reward": "success",    # feedback 'success' (1 / 0) or a numeric 'value' in [0, 1]
     "prior": [1.0, 1.0]}    # Beta prior (alpha, beta) of every arm

Where the state lives: in the store. Every refresh of the :class:`ExperimentService` hands the
running experiments to :meth:`BanditBook.on_refresh`, which re-reads each bandit's per-variant
feedback aggregates (in a worker thread, off the request path) and swaps in fresh
:class:`~sibyl.routing.ThompsonBandit` posteriors: a reward ``r`` (feedback value; ``success``
is stored as 1 / 0) adds ``r`` successes and ``1 - r`` failures to the arm that served the
request. Every replica sharing the database therefore converges to the same posteriors within
one refresh interval, and a restart loses nothing.

On the prediction path :meth:`BanditBook.route` makes one Thompson draw over the arms (the
floor applied: with probability ``floor · k`` a uniform arm) — no I/O, no lock. The QA override
(``X-Variant``) is handled by the ordinary router before the book is asked. Feedback should name
the request id: a bandit is not sticky, so a routing key's stored assignment is only its first
arm.

Thread safety: event-loop only; :attr:`BanditBook.bandits` is replaced as a whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog

from sibyl.errors import InvalidInputError, SibylError
from sibyl.routing import ArmStats, ThompsonBandit
from sibyl.service._experiments import ExperimentService, NewExperiment
from sibyl.service._predict import PredictionService
from sibyl.service._router import Route, RunningExperiment
from sibyl.store import Experiment, ExperimentKind, Store, VariantAggregate

log = structlog.get_logger("sibyl.bandits")

DEFAULT_FLOOR = 0.05
REWARDS = ("success", "value")
_KEYS = frozenset({"floor", "reward", "prior"})


@dataclass(frozen=True, slots=True)
class BanditConfig:
    """The settings of one bandit experiment (see the module docstring)."""

    floor: float = DEFAULT_FLOOR
    reward: str = "success"
    prior: tuple[float, float] = (1.0, 1.0)

    @classmethod
    def parse(cls, raw: Mapping[str, Any], arms: int) -> BanditConfig:
        """Check ``raw`` (the experiment's ``config``); ``InvalidInputError`` naming
        ``config.<key>`` and what is expected."""
        unknown = sorted(set(raw) - _KEYS)
        if unknown:
            raise InvalidInputError(
                f"unknown bandit setting(s) {unknown}; allowed: {sorted(_KEYS)}",
                field=f"config.{unknown[0]}",
            )
        floor = _number(raw.get("floor", DEFAULT_FLOOR), "config.floor")
        if not 0 <= floor <= 1 / arms:
            raise InvalidInputError(
                f"config.floor must be between 0 and 1/arms = {1 / arms:.4g} (each of the "
                f"{arms} arms gets at least that share), got {floor}",
                field="config.floor",
            )
        reward = raw.get("reward", "success")
        if reward not in REWARDS:
            raise InvalidInputError(
                f"config.reward must be one of {list(REWARDS)}, got {reward!r}",
                field="config.reward",
            )
        return cls(floor, str(reward), _prior(raw.get("prior", (1.0, 1.0))))

    @classmethod
    def stored(cls, routing: Mapping[str, Any], arms: int) -> BanditConfig:
        """The config of a stored experiment; settings written around the service that do not
        parse fall back to the defaults (logged), so routing never fails on them."""
        try:
            return cls.parse({k: v for k, v in routing.items() if k in _KEYS}, arms)
        except InvalidInputError as exc:
            log.warning("bandit_config_invalid", error=exc.message)
            return cls(floor=min(DEFAULT_FLOOR, 1 / arms))

    def to_json(self) -> dict[str, Any]:
        """The ``routing`` JSON stored for the experiment."""
        return {"floor": self.floor, "reward": self.reward, "prior": list(self.prior)}


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"{field} must be a finite number, got {value!r}", field=field)
    return float(value)


def _prior(value: Any) -> tuple[float, float]:
    if isinstance(value, Mapping):
        value = (value.get("alpha"), value.get("beta"))
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise InvalidInputError(
            f"config.prior must be [alpha, beta] (or {{'alpha', 'beta'}}), got {value!r}",
            field="config.prior",
        )
    alpha, beta = (_number(v, "config.prior") for v in value)
    if alpha <= 0 or beta <= 0:
        raise InvalidInputError(
            f"config.prior alpha and beta must be > 0, got {[alpha, beta]}", field="config.prior"
        )
    return alpha, beta


def validate_bandit(spec: NewExperiment) -> dict[str, Any]:
    """The validator of kind ``bandit``: arms need a weight
    > 0 (weights are not used for routing, but a zero-weight arm would be skipped by the
    router), the config must parse. Returns the ``routing`` JSON to store."""
    zero = [v.name for v in spec.variants if not v.weight > 0]
    if zero:
        raise InvalidInputError(
            f"bandit arms {zero} have weight 0; leave weights at their default (the bandit sets "
            "the traffic shares itself)",
            field="variants",
        )
    return BanditConfig.parse(dict(spec.config), len(spec.variants)).to_json()


def posterior(
    names: Sequence[str], config: BanditConfig, aggregates: Sequence[VariantAggregate] = ()
) -> ThompsonBandit:
    """The bandit over arms ``names`` after the feedback counted in ``aggregates`` (each numeric
    feedback value, clamped to [0, 1], is a reward; arms without aggregates have none)."""
    by_name = {a.variant: a for a in aggregates}
    arms = tuple(_arm(n, by_name.get(n)) for n in names)
    return ThompsonBandit(arms, config.floor, *config.prior)


def _arm(name: str, agg: VariantAggregate | None) -> ArmStats:
    if agg is None or agg.value_n == 0:
        return ArmStats(name)
    successes = min(max(agg.value_sum, 0.0), float(agg.value_n))
    return ArmStats(name, _whole(successes), _whole(agg.value_n - successes))


def _whole(x: float) -> float:
    """``x`` as an ``int`` when it is one (success feedback): exact and tidy in JSON."""
    return int(x) if float(x).is_integer() else x


class BanditBook:
    """Posteriors of the running bandit experiments and the Thompson draw that routes them.

    :meth:`on_refresh` is an ``ExperimentService`` refresh listener; :meth:`route` is the
    prediction path; :meth:`results` adds the arms' posteriors to an experiment's results. Store
    failures during an update are logged and the previous posteriors kept.
    """

    def __init__(self, store: Store, *, rng: random.Random | None = None) -> None:
        self.store = store
        self.bandits: Mapping[int, ThompsonBandit] = {}
        """Experiment id → posterior, replaced as a whole."""
        self._rng = rng or random.Random()
        self._running: dict[int, Experiment] = {}
        self._task: asyncio.Task[None] | None = None
        self._dirty = False
        self._closed = False
        self._updated = asyncio.Event()

    # ---- refresh ------------------------------------------------------------------------

    def on_refresh(self, running: Sequence[Experiment]) -> None:
        """Track the running bandits: drop stopped ones at once, give new ones their prior,
        and schedule a re-read of every bandit's aggregates (coalesced: one read at a time)."""
        self._running = {e.id: e for e in running if e.kind is ExperimentKind.BANDIT}
        current = {i: b for i, b in self.bandits.items() if i in self._running}
        for exp in self._running.values():
            if exp.id not in current or current[exp.id].names != _names(exp):
                current[exp.id] = posterior(_names(exp), _config(exp))
        self.bandits = current
        if not self._running or self._closed:
            return
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._update_loop(), name="sibyl-bandits"
            )

    async def _update_loop(self) -> None:
        while self._dirty:
            self._dirty = False
            try:
                await self.update()
            except SibylError as exc:  # keep the previous posteriors
                log.warning("bandit_update_failed", error=exc.message)
            except Exception:  # a bug must not end the updates silently
                log.exception("bandit_update_failed")

    async def update(self) -> None:
        """Re-read the aggregates of every running bandit and swap the posteriors in."""
        fresh: dict[int, ThompsonBandit] = {}
        for exp in list(self._running.values()):
            aggregates = await asyncio.to_thread(self.store.aggregates, exp.id, percentiles=False)
            fresh[exp.id] = posterior(_names(exp), _config(exp), aggregates)
        merged = {**self.bandits, **fresh}
        live = self._running  # a bandit stopped while reading is not brought back
        self.bandits = {i: b for i, b in merged.items() if i in live}
        self._updated.set()
        self._updated = asyncio.Event()

    async def wait_updated(self) -> None:
        """Wait for the next completed update (tests and tools)."""
        await self._updated.wait()

    async def close(self) -> None:
        """Stop updating (the store is closed by its owner)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # ---- the prediction path ------------------------------------------------------------

    def route(self, exp: RunningExperiment) -> Route:
        """The arm of ``exp`` for one request: one Thompson draw, floor applied."""
        bandit = self.bandits.get(exp.id)
        if bandit is None:  # not seen by a refresh yet (e.g. routed by a test's snapshot)
            bandit = posterior(exp.split.names, BanditConfig.stored(exp.config, len(exp.variants)))
        name = bandit.choose(self._rng)
        variant = exp.variants[name]
        ref = variant.version if variant.version is not None else variant.alias
        assert ref is not None  # Variant.validate: exactly one of version / alias
        return Route(exp.id, exp.name, name, variant.model, ref)

    # ---- results ------------------------------------------------------------------------

    def results(self, exp: Experiment, aggregates: Sequence[VariantAggregate]) -> dict[str, Any]:
        """``{"bandit": …}`` for an experiment's results: the config and per arm the counted
        rewards, posterior mean, P(best), the traffic share the bandit now gives it and the
        share it actually served."""
        config = _config(exp)
        bandit = posterior(_names(exp), config, aggregates)
        p_best = bandit.probabilities(20_000, np.random.default_rng(exp.id))
        served = {a.variant: a.n for a in aggregates}
        total = sum(served.values())
        uniform = config.floor * len(bandit.arms)
        arms = []
        for arm in bandit.arms:
            alpha, beta = bandit.prior_alpha + arm.successes, bandit.prior_beta + arm.failures
            arms.append(
                {
                    "name": arm.name,
                    "successes": arm.successes,
                    "failures": arm.failures,
                    "posterior_mean": alpha / (alpha + beta),
                    "p_best": p_best[arm.name],
                    "traffic_share": config.floor + (1 - uniform) * p_best[arm.name],
                    "served_share": served.get(arm.name, 0) / total if total else None,
                }
            )
        return {"bandit": {**config.to_json(), "arms": arms}}


def wire_bandits(experiments: ExperimentService, service: PredictionService) -> BanditBook:
    """Enable kind ``bandit``: its validator, posteriors refreshed with the experiments, the
    Thompson draw on the prediction path and the arms in the results."""
    book = BanditBook(experiments.store)
    experiments.register_kind(ExperimentKind.BANDIT, validate_bandit)
    experiments.on_refresh(book.on_refresh)
    experiments.extend_results(ExperimentKind.BANDIT, book.results)
    service.bandits = book
    return book


def _names(exp: Experiment) -> tuple[str, ...]:
    return tuple(v.name for v in exp.variants)


def _config(exp: Experiment) -> BanditConfig:
    return BanditConfig.stored(exp.routing, len(exp.variants))


__all__ = ["BanditBook", "BanditConfig", "posterior", "validate_bandit", "wire_bandits"]
