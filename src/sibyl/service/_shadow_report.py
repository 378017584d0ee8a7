"""The shadow report: per candidate, what was mirrored, how often it agreed, how fast it was,
and whether it meets the promotion gate — as JSON-friendly dicts (pure functions).

Per candidate (variant, model, version)::

    mirrored, compared, errors, dropped, error_rate
    rows, agreeing_rows, unanimous_requests
    agreement   {rate, low, high, level, effective_n}      (null before any compared row)
    latency_ms  {primary: {p50, p95}, candidate: {p50, p95},
                 difference: {p50, p95}          candidate − primary percentiles
                 paired_difference: {p50, p95}   percentiles of per-request differences
                 p95_increase}                   relative, what max_latency_increase bounds
    first_at, last_at
    gate        {passed, checks: [{criterion, required, actual, passed, message}]}

Candidates without any record yet are listed with zeros (and a failing gate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sibyl.service._shadow_config import config_of, primary_and_candidates
from sibyl.service._shadow_stats import agreement_interval, judge, latency_increase
from sibyl.settings import PromotionGateSettings
from sibyl.store import Experiment, ShadowAggregate


def shadow_report(
    exp: Experiment,
    aggregates: Sequence[ShadowAggregate],
    criteria: PromotionGateSettings,
    source: str,
) -> dict[str, Any]:
    """The report of shadow experiment ``exp`` judged against ``criteria`` (from ``source``)."""
    primary, _ = primary_and_candidates(list(exp.variants))
    candidates = [candidate_json(a, criteria) for a in with_empty(exp, aggregates)]
    return {
        "experiment": exp.name,
        "model": exp.model,
        "status": exp.status.value,
        "started_at": _iso(exp.started_at),
        "stopped_at": _iso(exp.stopped_at),
        "primary": {"variant": primary.name, "version": primary.version, "alias": primary.alias},
        "config": config_of(exp).to_json(),
        "criteria": {**criteria.model_dump(), "source": source},
        "candidates": candidates,
        "passed": bool(candidates) and all(c["gate"]["passed"] for c in candidates),
    }


def with_empty(exp: Experiment, aggregates: Sequence[ShadowAggregate]) -> list[ShadowAggregate]:
    """``aggregates`` plus an empty one for each candidate variant without any record."""
    seen = {a.variant for a in aggregates}
    _, candidates = primary_and_candidates(list(exp.variants))
    empty = [ShadowAggregate(v.name, v.model, v.version) for v in candidates if v.name not in seen]
    return [*aggregates, *empty]


def candidate_json(agg: ShadowAggregate, criteria: PromotionGateSettings) -> dict[str, Any]:
    """One candidate's part of the report."""
    agreement = agreement_interval(agg)
    checks = judge(criteria, agg)
    lat = agg.latency
    return {
        "variant": agg.variant,
        "model": agg.candidate_model,
        "version": agg.candidate_version,
        "mirrored": agg.mirrored,
        "compared": agg.compared,
        "errors": agg.errors,
        "dropped": agg.dropped,
        "error_rate": agg.errors / agg.mirrored if agg.mirrored else None,
        "rows": agg.rows,
        "agreeing_rows": agg.agreeing_rows,
        "unanimous_requests": agg.unanimous,
        "agreement": None if agreement is None else asdict(agreement),
        "latency_ms": {
            "primary": {"p50": lat.primary_p50, "p95": lat.primary_p95},
            "candidate": {"p50": lat.candidate_p50, "p95": lat.candidate_p95},
            "difference": {
                "p50": _minus(lat.candidate_p50, lat.primary_p50),
                "p95": _minus(lat.candidate_p95, lat.primary_p95),
            },
            "paired_difference": {"p50": lat.difference_p50, "p95": lat.difference_p95},
            "p95_increase": latency_increase(agg),
        },
        "first_at": _iso(agg.first_at),
        "last_at": _iso(agg.last_at),
        "gate": {"passed": all(c.passed for c in checks), "checks": [c.to_dict() for c in checks]},
    }


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
