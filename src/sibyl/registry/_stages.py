"""Stage transitions on MLflow aliases + tags, and the promotion gate.

A transition is a few MLflow calls, not a transaction: the alias moves first (readers switch
at that instant), tags follow. Two promotions of the same model at once race; the last alias
write wins and a rerun repairs the tags.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sibyl.registry._types import (
    PREVIOUS_PRODUCTION_TAG,
    STAGE_ALIASES,
    STAGE_TAG,
    Gate,
    GateResult,
    Stage,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient


def apply_stage(
    client: MlflowClient, name: str, version: str, stage: Stage, aliases: dict[str, str]
) -> str | None:
    """Put ``version`` of ``name`` in ``stage``; return the version that held the stage before.

    ``aliases`` is the model's alias → version map read just before. Rules: production and
    staging move their alias (a previous production version becomes ARCHIVED and is recorded
    in the model tag ``sibyl.previous_production``; a previous staging version becomes DRAFT);
    a version loses the stage aliases of other stages; ARCHIVED removes every alias.
    """
    _drop_aliases(client, name, version, stage, aliases)
    previous: str | None = None
    target = stage.alias
    if target is not None and aliases.get(target) != version:
        previous = aliases.get(target)
        client.set_registered_model_alias(name, target, version)
        if previous is not None:
            _demote(client, name, previous, stage, aliases)
    client.set_model_version_tag(name, version, STAGE_TAG, stage.value)
    return previous


def _drop_aliases(
    client: MlflowClient, name: str, version: str, stage: Stage, aliases: dict[str, str]
) -> None:
    for alias, holder in aliases.items():
        if holder != version:
            continue
        if stage is Stage.ARCHIVED or (alias in STAGE_ALIASES and alias != stage.alias):
            client.delete_registered_model_alias(name, alias)


def _demote(
    client: MlflowClient, name: str, previous: str, stage: Stage, aliases: dict[str, str]
) -> None:
    """The version that just lost ``stage``'s alias: archived after production, else draft."""
    if stage is Stage.PRODUCTION:
        others = {a: v for a, v in aliases.items() if a != Stage.PRODUCTION.value}
        _drop_aliases(client, name, previous, Stage.ARCHIVED, others)
        client.set_model_version_tag(name, previous, STAGE_TAG, Stage.ARCHIVED.value)
        client.set_registered_model_tag(name, PREVIOUS_PRODUCTION_TAG, previous)
    else:
        client.set_model_version_tag(name, previous, STAGE_TAG, Stage.DRAFT.value)


def evaluate_gate(
    gate: Gate, candidate: float | None, production: float | None, production_version: str | None
) -> GateResult:
    """Decide ``gate`` for a candidate metric value against production's (pure function).

    No production version → passes. Candidate without the metric → refused (say what to log).
    Production without the metric → passes (nothing to compare against).
    """
    if production_version is None:
        return GateResult(
            True, candidate, None, f"no production version yet; '{gate.metric}' not compared"
        )
    if candidate is None or math.isnan(candidate):
        return GateResult(
            False,
            None,
            production,
            f"the candidate's run has no metric '{gate.metric}'; log it with "
            f"mlflow.log_metric('{gate.metric}', …) or promote without a gate",
        )
    if production is None or math.isnan(production):
        return GateResult(
            True,
            candidate,
            None,
            f"production version {production_version}'s run has no metric "
            f"'{gate.metric}'; nothing to compare against",
        )
    gain = candidate - production if gate.higher_is_better else production - candidate
    passed = gain >= -gate.tolerance
    verdict = _verdict(gain, gate.tolerance, passed)
    return GateResult(
        passed,
        candidate,
        production,
        f"{gate.metric} {candidate:.6g} vs {production:.6g} of production version "
        f"{production_version}: {verdict}",
    )


def _verdict(gain: float, tolerance: float, passed: bool) -> str:
    if gain >= 0:
        return "not worse"
    if passed:
        return f"worse by {-gain:.6g}, within the tolerance {tolerance:.6g}"
    return f"worse by {-gain:.6g}, more than the tolerance {tolerance:.6g}"
