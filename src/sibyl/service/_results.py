"""Results of an experiment from the store's aggregates, computed with :mod:`sibyl.experiments`.

Where each success metric's numbers come from:

* ``error_rate`` (or any name starting with ``error``) — the prediction records: errors of n;
* any other **rate** metric (``success_rate``, ``conversion`` …) — feedback ``success`` flags
  (stored as value 1 / 0): successes of the feedback rows carrying one;
* any metric whose name holds ``latency`` (``avg_latency_ms``, ``latency_ms``) — the mean
  latency of the prediction records, in milliseconds, tested with its sample variance (p50/p95/
  p99 are reported beside it);
* any other **mean** metric (``revenue``, ``score`` …) — the numeric feedback ``value``.

A feedback row carries one numeric outcome, so an experiment names at most one feedback metric
(checked by :func:`parse_metrics`) besides ``error_rate`` and a latency metric.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from sibyl.errors import InvalidInputError
from sibyl.experiments import (
    Aggregate,
    MetricKind,
    Moments,
    Proportion,
    SuccessMetric,
    VariantData,
    decide,
)
from sibyl.store import Experiment, VariantAggregate


def parse_metrics(specs: Sequence[str]) -> list[SuccessMetric]:
    """Parse success-metric strings (``"success_rate >= 0.95 weight 1.0"``); raises
    ``InvalidInputError`` (``field="success_metrics"``) for an unreadable or unsupported one."""
    metrics = []
    for text in specs:
        if not isinstance(text, str):
            raise InvalidInputError(
                f"success metric {text!r} must be a string such as "
                "'success_rate >= 0.95 weight 1.0'",
                field="success_metrics",
            )
        try:
            metrics.append(SuccessMetric.parse(text))
        except InvalidInputError as exc:
            raise InvalidInputError(exc.message, field="success_metrics") from None
    _check_supported(metrics)
    return metrics


def _check_supported(metrics: Sequence[SuccessMetric]) -> None:
    names = [m.name for m in metrics]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"success metric names repeat: {names}", field="success_metrics")
    latency = [n for n in names if _is_latency(n)]
    if len(latency) > 1:
        raise InvalidInputError(
            f"one latency metric per experiment (the mean latency in ms), got {latency}",
            field="success_metrics",
        )
    feedback = [n for n in names if not _is_error(n) and not _is_latency(n)]
    if len(feedback) > 1:
        raise InvalidInputError(
            f"at most one feedback metric per experiment (a feedback row carries one outcome), "
            f"got {feedback}; keep one (plus error_rate and a latency metric)",
            field="success_metrics",
        )


def _is_error(name: str) -> bool:
    return name.lower().startswith("error")


def _is_latency(name: str) -> bool:
    return "latency" in name.lower()


def metric_aggregate(metric: SuccessMetric, agg: VariantAggregate) -> Aggregate:
    """The aggregate ``metric`` is tested on for one variant (see the module docstring)."""
    if _is_error(metric.name):
        return Proportion(agg.n, agg.errors)
    if _is_latency(metric.name):
        if not agg.n or agg.latency_mean_ms is None:
            return Moments(0, 0.0, 0.0)
        return Moments(agg.n, agg.latency_mean_ms, agg.latency_var_ms2 or 0.0)
    if metric.kind is MetricKind.RATE:
        successes = round(agg.value_sum)
        if math.isclose(agg.value_sum, agg.value_sumsq) and 0 <= successes <= agg.value_n:
            return Proportion(agg.value_n, successes)
    return Moments.from_sums(agg.value_n, agg.value_sum, agg.value_sumsq)


def results(
    exp: Experiment,
    aggregates: Sequence[VariantAggregate],
    metrics: Sequence[SuccessMetric],
    *,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """JSON-friendly results: per variant counts, latency and outcome metrics; per treatment
    the comparisons with control (difference, lift, CIs, p-values, confidence sequence, power);
    the SRM check and the decision."""
    control = exp.control.name if exp.control else exp.variants[0].name
    ordered = sorted(aggregates, key=lambda a: a.variant != control)
    out: dict[str, Any] = {
        "experiment": exp.name,
        "model": exp.model,
        "status": str(exp.status),
        "control": control,
        "metrics": [m.to_dict() for m in metrics],
        "variants": [_variant(a, metrics) for a in ordered],
    }
    if len(ordered) < 2 or not metrics:
        out.update(comparisons=[], srm=None, decision=None)
        return out
    data = [
        VariantData(a.variant, {m.name: metric_aggregate(m, a) for m in metrics}, a.assigned)
        for a in ordered
    ]
    weights = {a.variant: a.weight for a in ordered}
    srm_weights = weights if sum(a.assigned for a in ordered) else None
    decision = decide(data, metrics, control=control, alpha=alpha, weights=srm_weights)
    out["comparisons"] = [_plain(r) for r in decision.results]
    out["srm"] = _plain(decision.srm)
    out["decision"] = {
        "verdict": str(decision.verdict),
        "variant": decision.variant,
        "reasons": [_plain(r) for r in decision.reasons],
        "scores": decision.scores,
    }
    return out


def _variant(agg: VariantAggregate, metrics: Sequence[SuccessMetric]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": agg.variant,
        "is_control": agg.is_control,
        "weight": agg.weight,
        "assigned": agg.assigned,
        "n": agg.n,
        "errors": agg.errors,
        "error_rate": agg.error_rate,
        "latency_ms": {
            "mean": agg.latency_mean_ms,
            "p50": agg.latency_p50_ms,
            "p95": agg.latency_p95_ms,
            "p99": agg.latency_p99_ms,
        },
        "feedback_n": agg.feedback_n,
        "value_mean": agg.value_mean,
        "labels": dict(agg.labels),
    }
    row["metrics"] = {m.name: _plain(metric_aggregate(m, agg)) for m in metrics}
    return row


def _plain(obj: Any) -> Any:
    """Dataclasses and enums as JSON values; non-finite floats as ``None``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        if isinstance(obj, (Proportion, Moments)):
            out["mean"] = obj.mean
        return out
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "value") and isinstance(getattr(obj, "value", None), str):
        return obj.value
    return obj
