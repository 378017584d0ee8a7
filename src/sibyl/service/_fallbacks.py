"""Fallback chains on the live path: who answers when the requested version does not.

A model's chain (``settings.fallbacks[model]``) lists members tried in order after the requested
version (the *primary*) failed in a way the chain covers (``on``: ``error``, ``timeout``,
``circuit_open``; see :func:`~sibyl.service._resilience.failure_kind`):

* ``"previous"`` — the production version before the current one. When the primary is not the
  production version (a pinned version, a canary, an experiment's variant), the current
  production version answers instead: the last version known to serve. The version before
  production is the one this server saw replaced by a hot swap, else the registry's model tag
  ``sibyl.previous_production`` (written by ``sibyl models promote``), else the highest
  lower-numbered version that is not archived.
* a model reference in ``runtime.preload`` syntax — ``"rules"`` (its production version),
  ``"rules@staging"``, ``"rules:2"`` — served like any version (batched, cached, its own breaker).
* ``{"default": value}`` — a constant answer for every row; it never fails, so it ends a chain.

Each model member gets ``timeout_ms`` (else what is left of the request's deadline); a member
that raises, times out, refuses the input, is shed or has an open circuit is skipped. When every
member fails, the primary's error is raised, its message naming each member's failure.
``ml_fallback_total{model,reason,answered_by}`` counts every answer given by the chain (and,
as ``answered_by="none"``, every chain that failed). Model members are loaded and warmed when
the model's production version is; a hot swap keeps the replaced version loaded as "previous".

Event-loop only.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from sibyl.errors import DeadlineExceededError, InvalidInputError, NotFoundError, SibylError
from sibyl.monitoring import Metrics
from sibyl.registry import ModelRegistry, Stage
from sibyl.routing import DefaultValue, FailureKind
from sibyl.runtime.types import Prediction
from sibyl.service._resilience import failure_kind, guarded
from sibyl.settings import DefaultAnswerSettings, FallbackSettings, Settings

if TYPE_CHECKING:
    from sibyl.service._manager import ModelManager
    from sibyl.service._predict import PredictRequest
    from sibyl.service._served import ServedVersion

log = structlog.get_logger(__name__)
PREVIOUS = "previous"


@dataclass(frozen=True, slots=True)
class Member:
    """One member of a chain. ``label`` is its configured name (the ``answered_by`` label)."""

    label: str
    model: str | None = None
    """The model a model member names (``None`` for ``previous`` and the default)."""
    ref: str | None = None
    """Its version number or alias (``None``: production)."""
    default: DefaultValue | None = None

    @property
    def previous(self) -> bool:
        """Whether this member is ``previous``."""
        return self.label == PREVIOUS and self.model is None


@dataclass(frozen=True, slots=True)
class Chain:
    """A model's parsed fallback chain."""

    model: str
    members: tuple[Member, ...]
    on: frozenset[FailureKind]
    timeout_s: float | None

    def covers(self, exc: SibylError) -> bool:
        """Whether this failure of the primary goes to the chain."""
        kind = failure_kind(exc)
        return kind is not None and kind in self.on

    def limit(self, deadline: float) -> float:
        """The deadline of one model call started now (``timeout_ms`` within ``deadline``)."""
        if self.timeout_s is None:
            return deadline
        return min(deadline, time.monotonic() + self.timeout_s)

    @property
    def has_previous(self) -> bool:
        """Whether ``previous`` is a member."""
        return any(m.previous for m in self.members)


@dataclass(frozen=True, slots=True)
class FallbackAnswer:
    """What the chain answered, who answered and why the primary did not."""

    prediction: Prediction
    answered_by: str
    """``"version 2"`` (a version of the same model), ``"model rules:1"``, ``"default"``."""
    reason: FailureKind
    version: ServedVersion | None
    """The version that answered; ``None`` when the default did."""


def parse_chains(settings: Settings) -> dict[str, Chain]:
    """Every configured chain; ``InvalidInputError`` naming the setting when one is malformed."""
    return {model: parse_chain(model, s) for model, s in settings.fallbacks.items()}


def parse_chain(model: str, s: FallbackSettings) -> Chain:
    """One model's chain (see the module docstring for the member syntax)."""
    members = tuple(_member(m, f"fallbacks.{model}.chain[{i}]") for i, m in enumerate(s.chain))
    for i, m in enumerate(members[:-1]):
        if m.default is not None:
            raise InvalidInputError(
                f"Fallback chain of '{model}': the default answers every request, so it must be "
                "the last member",
                field=f"fallbacks.{model}.chain[{i}]",
            )
    labels = [m.label for m in members]
    if len(set(labels)) != len(labels):
        raise InvalidInputError(
            f"Fallback chain of '{model}' names a member twice: {labels}",
            field=f"fallbacks.{model}.chain",
        )
    timeout = None if s.timeout_ms is None else s.timeout_ms / 1000
    return Chain(model, members, frozenset(FailureKind(k) for k in s.on), timeout)


def _member(spec: str | DefaultAnswerSettings, field: str) -> Member:
    if isinstance(spec, DefaultAnswerSettings):
        return Member("default", default=_default(spec, field))
    text = spec.strip()
    if text == PREVIOUS:
        return Member(PREVIOUS)
    name, ref = text, None
    if "@" in text:
        name, ref = text.split("@", 1)
    elif ":" in text:
        name, ref = text.rsplit(":", 1)
        if not ref.isdigit():
            ref = ""
    if not name or ref == "" or any(c.isspace() for c in text):
        raise InvalidInputError(
            f"Fallback member {spec!r} is not 'previous', a model ('rules'), a model at an "
            "alias ('rules@staging'), a model version ('rules:2') or {\"default\": value}",
            field=field,
        )
    return Member(text, name, ref)


def _default(spec: DefaultAnswerSettings, field: str) -> DefaultValue:
    probs = None if spec.probabilities is None else tuple(spec.probabilities)
    classes = None if spec.classes is None else tuple(spec.classes)
    try:
        return DefaultValue(spec.default, probs, classes)
    except InvalidInputError as exc:
        raise InvalidInputError(exc.message, field=f"{field}.probabilities") from None


def previous_version(registry: ModelRegistry, model: str, current: str) -> str | None:
    """The version in production before ``current`` (blocking: registry calls).

    The model tag ``sibyl.previous_production`` when it names another version, else the
    highest version below ``current`` that is not archived, else ``None``.
    """
    tagged = registry.previous_production(model)
    if tagged is not None and tagged != current:
        return tagged
    lower = [
        v.version
        for v in registry.list_versions(model)  # newest first
        if int(v.version) < int(current) and v.stage is not Stage.ARCHIVED
    ]
    return lower[0] if lower else None


def _restated(exc: SibylError, message: str) -> SibylError:
    """A copy of ``exc`` (same class and attributes, e.g. ``retry_after``) saying ``message``;
    ``exc`` itself may be shared by requests that joined one computation, so it is not
    changed."""
    copy = type(exc).__new__(type(exc), message)
    copy.__dict__.update(exc.__dict__)
    copy.message = message
    return copy


class Fallbacks:
    """The fallback chains of every model, answering over the manager's served versions.

    ``chains`` is read on the hot path (one dict lookup per request); models without a chain
    cost nothing else. See the module docstring for the behaviour.
    """

    def __init__(self, manager: ModelManager, metrics: Metrics, settings: Settings) -> None:
        self.manager = manager
        self.metrics = metrics
        self.chains = parse_chains(settings)
        self._previous: dict[str, tuple[str, str | None]] = {}
        """model → (a production version, the version in production before it)."""
        self._tasks: set[asyncio.Task[None]] = set()
        if self.chains:
            manager.on_production(self._on_production)

    async def answer(
        self,
        req: PredictRequest,
        primary: ServedVersion,
        failure: SibylError,
        deadline: float,
    ) -> FallbackAnswer:
        """Answer ``req`` down ``primary``'s chain after ``failure`` (which the chain covers);
        raises ``failure`` (with a note) when every member fails."""
        chain = self.chains[primary.name]
        reason = failure_kind(failure) or FailureKind.ERROR
        tried: list[str] = []
        for member in chain.members:
            if member.default is not None:
                batch = req.inputs.to_batch(primary.loaded.schema)
                return self._answered(chain, member, reason, member.default.predict(batch), None)
            try:
                sv = await self._version(member, primary, deadline)
                if sv is primary:
                    raise NotFoundError("it is the version that failed")
                pred = await self._ask(sv, req, chain.limit(deadline))
            except SibylError as exc:
                tried.append(f"{member.label}: {exc.message}")
                continue
            return self._answered(chain, member, reason, pred, sv)
        self.metrics.fallbacks.labels(chain.model, reason.value, "none").inc()
        raise _restated(
            failure, f"{failure.message} (every fallback failed too: {'; '.join(tried)})"
        ) from failure

    def describe(self, model: str) -> dict[str, Any] | None:
        """The model's chain for ``GET /v1/models/{name}`` (``None``: it has none)."""
        chain = self.chains.get(model)
        if chain is None:
            return None
        known = self._previous.get(model)
        return {
            "chain": [m.label for m in chain.members],
            "on": sorted(k.value for k in chain.on),
            "timeout_ms": None if chain.timeout_s is None else chain.timeout_s * 1000,
            "previous": None if known is None else {"of": known[0], "version": known[1]},
        }

    # -- members ------------------------------------------------------------------------------
    def _answered(
        self,
        chain: Chain,
        member: Member,
        reason: FailureKind,
        pred: Prediction,
        sv: ServedVersion | None,
    ) -> FallbackAnswer:
        self.metrics.fallbacks.labels(chain.model, reason.value, member.label).inc()
        if sv is None:
            who = "default"
        elif sv.name == chain.model:
            who = f"version {sv.version}"
        else:
            who = f"model {sv.name}:{sv.version}"
        return FallbackAnswer(pred, who, reason, sv)

    async def _version(
        self, member: Member, primary: ServedVersion, deadline: float
    ) -> ServedVersion:
        if not member.previous:
            assert member.model is not None
            return await self._get(member.model, member.ref, deadline)
        model = primary.name
        production = self.manager.production(model)
        if production is None:
            production = await self._get(model, None, deadline)
        if production is not primary:
            return production  # a pinned / canary version failed: production answers
        previous = await self._previous_of(model, primary.version, deadline)
        if previous is None:
            raise NotFoundError(
                f"model '{model}' has no version in production before {primary.version}"
            )
        return await self._get(model, previous, deadline)

    async def _get(self, name: str, ref: str | None, deadline: float | None) -> ServedVersion:
        """A loaded version (no I/O), else load it within the deadline."""
        sv = self.manager.lookup(name, ref)
        if sv is not None:
            return sv
        if deadline is None:
            return await self.manager.get(name, ref)
        try:
            return await asyncio.wait_for(
                self.manager.get(name, ref), max(0.0, deadline - time.monotonic())
            )
        except TimeoutError:
            raise DeadlineExceededError(
                f"'{name}{'@' + ref if ref else ''}' was still loading at the deadline"
            ) from None

    async def _previous_of(self, model: str, version: str, deadline: float | None) -> str | None:
        known = self._previous.get(model)
        if known is not None and known[0] == version:
            return known[1]
        lookup = asyncio.to_thread(previous_version, self.manager.registry, model, version)
        try:
            if deadline is None:
                previous = await lookup
            else:
                previous = await asyncio.wait_for(lookup, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise DeadlineExceededError(
                f"the registry did not say which version of '{model}' preceded {version} "
                "before the deadline"
            ) from None
        self._previous[model] = (version, previous)
        return previous

    @staticmethod
    async def _ask(sv: ServedVersion, req: PredictRequest, deadline: float) -> Prediction:
        if time.monotonic() >= deadline:
            raise DeadlineExceededError("no time was left before the deadline")
        sv.admit()
        sv.acquire()
        try:
            batch = req.inputs.to_batch(sv.loaded.schema)
            return await guarded(sv, batch, req.priority, deadline)
        finally:
            sv.release()

    # -- warming ------------------------------------------------------------------------------
    def _on_production(self, new: ServedVersion, old: ServedVersion | None) -> bool:
        """A version became production: note its predecessor, warm the chain's members, and
        keep the replaced version loaded when it is now ``previous``."""
        chain = self.chains.get(new.name)
        if chain is None:
            return False
        keep = old is not None and old is not new and chain.has_previous
        if keep:
            assert old is not None
            self._previous[new.name] = (new.version, old.version)
        try:
            task = asyncio.get_running_loop().create_task(self._warm(chain, new))
        except RuntimeError:  # no loop (a version added outside one): members load on demand
            return keep
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return keep

    async def _warm(self, chain: Chain, primary: ServedVersion) -> None:
        for member in chain.members:
            if member.default is not None:
                continue
            try:
                if not member.previous:
                    assert member.model is not None
                    await self._get(member.model, member.ref, None)
                    continue
                previous = await self._previous_of(primary.name, primary.version, None)
                if previous is not None:
                    await self._get(primary.name, previous, None)
            except Exception as exc:  # warming is best effort: requests load what they need
                log.warning(
                    "fallback_warm_failed",
                    model=chain.model,
                    member=member.label,
                    error=getattr(exc, "message", repr(exc)),
                )
