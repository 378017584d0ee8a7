"""The status document of a canary and the checks of the control plane (pure functions)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sibyl.errors import ConflictError, NotFoundError
from sibyl.service._canary_config import CanaryConfig, roles
from sibyl.service._canary_policy import CanaryState, Phase
from sibyl.store import Experiment, ExperimentKind, ExperimentStatus


def describe(
    exp: Experiment,
    cfg: CanaryConfig,
    state: CanaryState | None,
    verdict: dict[str, Any] | None,
) -> dict[str, Any]:
    """The status document of a canary (JSON-ready)."""
    baseline, candidate = roles(exp)
    weights = {v.name: v.weight for v in exp.variants}
    total = sum(weights.values())
    step = state.step if state else 0
    dwell_end = state.step_started_at + timedelta(seconds=cfg.dwell_s) if state else None
    return {
        "name": exp.name,
        "model": exp.model,
        "status": exp.status.value,
        "phase": _phase(exp, state),
        "step": step,
        "steps": list(cfg.steps),
        "percent": 100.0 * weights[candidate.name] / total if total else 0.0,
        "weights": weights,
        "baseline": {"variant": baseline.name, "version": baseline.version},
        "candidate": {"variant": candidate.name, "version": candidate.version},
        "started_at": _iso(state.started_at if state else None),
        "step_started_at": _iso(state.step_started_at if state else None),
        "dwell_ends_at": _iso(dwell_end),
        "finished_at": _iso(state.finished_at if state else None),
        "reason": state.reason if state else None,
        "verdict": verdict,
        "history": list(state.history) if state else [],
        "config": cfg.to_json(),
    }


def _phase(exp: Experiment, state: CanaryState | None) -> str:
    if state is None:
        return "stopped" if exp.status is ExperimentStatus.STOPPED else "pending"
    if exp.status is ExperimentStatus.STOPPED and state.phase is Phase.RUNNING:
        return "stopped"  # stopped through /stop rather than rolled back
    return state.phase.value


def check_abortable(exp: Experiment, state: CanaryState) -> None:
    if state.phase is Phase.PROMOTING:
        raise ConflictError(
            f"Canary '{exp.name}' is being promoted; wait for it, then promote the baseline "
            "version again to go back"
        )
    baseline, _ = roles(exp)
    if state.phase is Phase.PROMOTED:
        raise ConflictError(
            f"Canary '{exp.name}' was promoted already; to go back, promote the baseline: "
            f"`sibyl models promote {exp.model} {baseline.version} production`"
        )
    if exp.status is ExperimentStatus.STOPPED:
        raise ConflictError(f"Canary '{exp.name}' is over already ({_phase(exp, state)})")


def require_canary(exp: Experiment) -> None:
    if exp.kind is not ExperimentKind.CANARY:
        raise NotFoundError(
            f"Experiment '{exp.name}' is a {exp.kind} experiment, not a canary; read it with "
            f"GET /v1/experiments/{exp.name}/results"
        )


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None
