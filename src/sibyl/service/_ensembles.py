"""A running ensemble: several models/versions answering together behind one endpoint name.

An ensemble is an experiment of kind ``ensemble``. Its ``model`` is the endpoint callers name
(``POST /v1/models/{endpoint}/predict``, ``/v2/models/{endpoint}/infer``,
``/v1/models/{endpoint}/invocations``), its variants are the members (model + version or alias
+ weight) and its ``config``::

    {"combine": "auto",           # auto | mean_proba (classifiers) | mean (regressors)
     "min_members": 1,            # members that must answer, else the request fails
     "member_timeout_ms": null}   # per-member deadline (default: the request's)

:meth:`Ensemble.predict` asks every member at once, each through the normal version path
(batching, cache, metrics, deadlines apply), skips members that fail (a member answered by its
fallback chain counts as failed) or answer something that cannot be combined, re-weights the
survivors and reports every member in ``PredictResult.members``. Fewer than ``min_members``
answers → one error naming each member's failure: 400 when every member refused the input as
invalid, 504 when every one timed out, else 503.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from prometheus_client import Counter

from sibyl.errors import (
    BackendUnavailableError,
    DeadlineExceededError,
    InvalidInputError,
    SibylError,
)
from sibyl.runtime.types import Prediction, Task
from sibyl.service._ensemble_combine import (
    Combine,
    MemberOutcome,
    check_answer,
    combine,
    normalise,
)
from sibyl.service._predict import PredictRequest, PredictResult
from sibyl.store import Experiment

PredictFn = Callable[[PredictRequest], Awaitable[PredictResult]]
"""How a member is asked: the service's version path for one pinned request."""

COMBINES = ("auto", Combine.MEAN_PROBA.value, Combine.MEAN.value)
_KEYS = frozenset({"combine", "min_members", "member_timeout_ms"})


@dataclass(frozen=True, slots=True)
class Member:
    """One member: a model version (or alias) and its weight."""

    name: str
    model: str
    ref: str
    weight: float


@dataclass(frozen=True, slots=True)
class EnsembleConfig:
    """The settings of one ensemble; ``combine`` may be ``auto`` until the members' task is
    known (:meth:`resolved`)."""

    combine: str = "auto"
    min_members: int = 1
    member_timeout_ms: float | None = None
    task: Task | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any], members: int) -> EnsembleConfig:
        """Check the ``config`` of a new ensemble of ``members`` members
        (``InvalidInputError`` naming ``config.<key>``)."""
        unknown = sorted(set(raw) - _KEYS)
        if unknown:
            raise InvalidInputError(
                f"unknown ensemble setting(s) {unknown}; allowed: {sorted(_KEYS)}",
                field=f"config.{unknown[0]}",
            )
        how = raw.get("combine", "auto")
        if how not in COMBINES:
            raise InvalidInputError(
                f"config.combine must be one of {list(COMBINES)}, got {how!r}",
                field="config.combine",
            )
        least = raw.get("min_members", 1)
        if isinstance(least, bool) or not isinstance(least, int) or not 1 <= least <= members:
            raise InvalidInputError(
                f"config.min_members must be a whole number from 1 to the {members} members, "
                f"got {least!r}",
                field="config.min_members",
            )
        return cls(str(how), least, _timeout(raw.get("member_timeout_ms")))

    def resolved(self, task: Task) -> EnsembleConfig:
        """This config for members of ``task``: ``auto`` picks the combination, an explicit
        one must fit (``InvalidInputError`` on ``config.combine``)."""
        how = Combine.for_task(task)
        if self.combine not in ("auto", how.value):
            raise InvalidInputError(
                f"config.combine '{self.combine}' does not fit {task} members; use 'auto' or "
                f"'{how.value}'",
                field="config.combine",
            )
        return replace(self, combine=how.value, task=task)

    def to_json(self) -> dict[str, Any]:
        """The ``routing`` JSON stored for the experiment."""
        return {
            "combine": self.combine,
            "task": None if self.task is None else self.task.value,
            "min_members": self.min_members,
            "member_timeout_ms": self.member_timeout_ms,
        }

    @classmethod
    def stored(cls, routing: Mapping[str, Any]) -> EnsembleConfig:
        """The config a validated ensemble stored (``KeyError`` / ``ValueError`` otherwise)."""
        timeout = routing.get("member_timeout_ms")
        return cls(
            Combine(routing["combine"]).value,
            int(routing.get("min_members", 1)),
            None if timeout is None else float(timeout),
            Task(routing["task"]),
        )


def _timeout(value: Any) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value > 0)
    ):
        raise InvalidInputError(
            f"config.member_timeout_ms must be a positive number of milliseconds or null, got "
            f"{value!r}",
            field="config.member_timeout_ms",
        )
    return float(value)


class Ensemble:
    """One running ensemble (built from its stored experiment); safe to share on the loop."""

    def __init__(self, exp: Experiment, failures: Counter) -> None:
        self.id = exp.id
        self.name = exp.name
        self.endpoint = exp.model
        self.config = EnsembleConfig.stored(exp.routing)
        self.combine = Combine(self.config.combine)
        self.members = tuple(_member(v.name, v.model, v.version, v.alias, v.weight)
                             for v in exp.variants)  # fmt: skip
        self._failures = failures

    async def predict(self, req: PredictRequest, predict_one: PredictFn) -> PredictResult:
        """Ask every member, combine those that answered (see the module docstring)."""
        if req.ref is not None:
            raise InvalidInputError(
                f"'{self.endpoint}' is the ensemble '{self.name}' and has no versions; call it "
                "without a version or alias (or call a member's model directly)",
                field="version",
            )
        calls = [predict_one(self._member_request(req, m)) for m in self.members]
        answers = await asyncio.gather(*calls, return_exceptions=True)
        outcomes, good, errors = self._judge(answers)
        if len(good) < self.config.min_members:
            raise self._no_answer(outcomes, errors)
        return self._answer(req, outcomes, good)

    def _member_request(self, req: PredictRequest, member: Member) -> PredictRequest:
        timeout = req.timeout_s
        if self.config.member_timeout_ms is not None:
            own = self.config.member_timeout_ms / 1e3
            timeout = own if timeout is None else min(own, timeout)
        return replace(
            req, model=member.model, ref=member.ref, timeout_s=timeout, routing_key=None,
            variant=None,
        )  # fmt: skip

    def _judge(
        self, answers: Sequence[PredictResult | BaseException]
    ) -> tuple[list[MemberOutcome], list[tuple[Member, PredictResult]], list[BaseException]]:
        """Each member's outcome, the accepted answers and the failures' exceptions."""
        outcomes: list[MemberOutcome] = []
        good: list[tuple[Member, PredictResult]] = []
        errors: list[BaseException] = []
        classes: tuple[Any, ...] | None = None  # the first accepted answer's, the reference
        rows: int | None = None
        for member, answer in zip(self.members, answers, strict=True):
            problem = self._problem(answer, classes, rows)
            if problem is None:
                assert isinstance(answer, PredictResult)
                classes = classes or answer.prediction.classes
                rows = len(answer.prediction)
                good.append((member, answer))
                outcomes.append(_outcome(member, answer.version))
                continue
            if isinstance(answer, BaseException):
                errors.append(answer)
            self._failures.labels(self.name, member.name).inc()
            outcomes.append(_outcome(member, None, problem))
        shares = normalise([m.weight for m, _ in good]) if good else []
        share_of = {m.name: s for (m, _), s in zip(good, shares, strict=True)}
        return [replace(o, share=share_of.get(o.name, 0.0)) for o in outcomes], good, errors

    def _problem(
        self,
        answer: PredictResult | BaseException,
        classes: tuple[Any, ...] | None,
        rows: int | None,
    ) -> str | None:
        if isinstance(answer, SibylError):
            return f"{type(answer).__name__}: {answer.message}"
        if isinstance(answer, BaseException):
            return f"{type(answer).__name__}: {answer!r}"
        if answer.fallback is not None:  # the ensemble is the redundancy: no stand-ins
            return (
                f"its version failed ({answer.fallback_reason}) and fallback "
                f"{answer.fallback} answered instead; skipped"
            )
        if answer.task is not self.config.task:
            return f"version {answer.version} is a {answer.task}, the ensemble a {self.config.task}"
        problem = check_answer(answer.prediction, self.combine, rows, classes)
        return None if problem is None else f"version {answer.version} {problem}"

    def _answer(
        self,
        req: PredictRequest,
        outcomes: list[MemberOutcome],
        good: list[tuple[Member, PredictResult]],
    ) -> PredictResult:
        preds: list[Prediction] = [r.prediction for _, r in good]
        combined = combine(preds, [m.weight for m, _ in good], self.combine)
        first = good[0][1]
        return PredictResult(
            self.endpoint,
            "+".join(f"{r.model}:{r.version}" for _, r in good),
            "ensemble",
            req.request_id,
            combined,
            first.task,
            first.schema,
            members=tuple(outcomes),
        )

    def _no_answer(
        self, outcomes: Sequence[MemberOutcome], errors: Sequence[BaseException]
    ) -> SibylError:
        answered = sum(o.ok for o in outcomes)
        detail = "; ".join(
            f"member '{o.name}' ({o.model} {_ref_text(o.ref)}): {o.error}"
            for o in outcomes
            if not o.ok
        )
        message = (
            f"Ensemble '{self.name}' could not answer: {answered} of {len(outcomes)} members "
            f"answered and it needs {self.config.min_members}. {detail}. Fix the failing "
            "members, or replace them (`sibyl ensembles stop` then `create`)"
        )
        failed = len(outcomes) - answered
        if len(errors) == failed and all(isinstance(e, InvalidInputError) for e in errors):
            first = errors[0]
            assert isinstance(first, InvalidInputError)
            return InvalidInputError(message, field=first.field)
        if len(errors) == failed and all(isinstance(e, DeadlineExceededError) for e in errors):
            return DeadlineExceededError(message)
        return BackendUnavailableError(message)


def _member(name: str, model: str, version: str | None, alias: str | None, weight: float) -> Member:
    ref = version if version is not None else alias
    assert ref is not None  # Variant.validate: exactly one of version / alias
    return Member(name, model, ref, weight)


def _outcome(member: Member, version: str | None, error: str | None = None) -> MemberOutcome:
    return MemberOutcome(member.name, member.model, member.ref, member.weight, version, 0.0, error)


def _ref_text(ref: str) -> str:
    return f"version {ref}" if ref.isdigit() else f"@{ref}"


def member_failures(registry: Any) -> Counter:
    """The ``ml_ensemble_member_failures_total{ensemble,member}`` counter in ``registry``."""
    return Counter(
        "ml_ensemble_member_failures",
        "Ensemble members that failed or answered something that could not be combined.",
        ["ensemble", "member"],
        registry=registry,
    )


__all__ = ["Ensemble", "EnsembleConfig", "Member", "PredictFn", "member_failures"]
