"""The decision rule: keep running / ship variant X / no difference / stop: harm.

Every treatment is compared with the control on every success metric at level
``α/(k − 1)`` (Bonferroni over the ``k − 1`` treatments), always-valid, so the rule may be applied
at every look. In order of precedence:

1. **stop: harm** — some variant is significantly worse than the control on some metric
   (its always-valid interval lies beyond ``harm_margin`` on the bad side), or it confidently
   violates a guard threshold (the always-valid interval of its own value lies on the wrong
   side). Harm is checked per metric at the comparison level, so with ``m`` metrics the chance of
   a false "harm" is up to ``m·α`` — deliberately conservative: stopping is the safe error.
2. **keep running** if the sample-ratio check alarms (the data cannot be trusted).
3. **ship X** — X is significantly better on the primary metric (largest weight) and no guard is
   violated nor missed by X's point estimate. Among several, the highest weighted score
   (``Σ w·(+1 better, −1 worse/violated)/Σ w``), then the largest primary effect, wins.
4. **no difference** — for every treatment the fixed-horizon sample size for the primary MDE is
   reached and the always-valid interval of the primary difference lies inside ``(−MDE, +MDE)``.
5. otherwise **keep running**.

Rate guards use the variance ``p̃(1 − p̃)`` with ``p̃ = (x + ½)/(n + 1)`` so that a variant with
0 of n successes still gets a finite interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from sibyl.errors import InvalidInputError
from sibyl.experiments._compare import Comparison, compare
from sibyl.experiments._metrics import SuccessMetric, primary_metric
from sibyl.experiments._power import PowerAnalysis, power_analysis
from sibyl.experiments._sequential import Interval, confidence_sequence, default_tau
from sibyl.experiments._srm import SampleRatioCheck, sample_ratio_mismatch
from sibyl.experiments._stats import Aggregate, MetricKind, Proportion


class Verdict(StrEnum):
    KEEP_RUNNING = "keep_running"
    SHIP = "ship"
    NO_DIFFERENCE = "no_difference"
    STOP_HARM = "stop_harm"


class Finding(StrEnum):
    """What was found for one variant and metric (or for the experiment: SRM)."""

    BETTER = "better"
    WORSE = "worse"
    GUARD_VIOLATED = "guard_violated"
    GUARD_UNMET = "guard_unmet"
    EQUIVALENT = "equivalent"
    INCONCLUSIVE = "inconclusive"
    INSUFFICIENT_DATA = "insufficient_data"
    SAMPLE_RATIO_MISMATCH = "sample_ratio_mismatch"


_HARM = (Finding.WORSE, Finding.GUARD_VIOLATED)


@dataclass(frozen=True)
class VariantData:
    """Aggregates of one variant: one per success metric name; ``assigned`` feeds the SRM check."""

    name: str
    metrics: Mapping[str, Aggregate]
    assigned: int | None = None


@dataclass(frozen=True)
class Reason:
    """One finding in words, with the numbers behind it."""

    finding: Finding
    message: str
    variant: str | None = None
    metric: str | None = None
    effect: float | None = None
    interval: Interval | None = None
    always_valid_p: float | None = None


@dataclass(frozen=True)
class MetricResult:
    """Everything computed for one treatment on one metric."""

    variant: str
    metric: str
    primary: bool
    comparison: Comparison | None
    guard_interval: Interval | None
    power: PowerAnalysis | None
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class Decision:
    """The verdict, the variant it names (ship / harm), the reasons and all the numbers."""

    verdict: Verdict
    variant: str | None
    reasons: tuple[Reason, ...]
    results: tuple[MetricResult, ...]
    scores: dict[str, float]
    srm: SampleRatioCheck | None
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    variants: Sequence[VariantData],
    metrics: Sequence[SuccessMetric],
    *,
    control: str,
    alpha: float = 0.05,
    power: float = 0.8,
    weights: Mapping[str, float] | None = None,
) -> Decision:
    """Apply the rule of the module docstring to the current aggregates.

    ``weights`` are the configured traffic weights; with them (and ``assigned`` on every variant)
    the SRM check runs. Raises ``InvalidInputError`` when the control is unknown, there is no
    treatment, or a variant lacks a metric.
    """
    specs = tuple(metrics)
    _validate(variants, specs, control)
    ctrl = next(v for v in variants if v.name == control)
    treatments = [v for v in variants if v.name != control]
    level = alpha / len(treatments)
    primary = primary_metric(specs)
    results: list[MetricResult] = []
    reasons: list[Reason] = []
    for var in treatments:
        for spec in specs:
            result, found = _evaluate(ctrl, var, spec, spec is primary, level, power)
            results.append(result)
            reasons.extend(found)
    srm = _srm(variants, weights)
    scores = {v.name: _score(v.name, results, specs) for v in treatments}
    verdict, chosen, why = _verdict(results, reasons, srm, scores, primary)
    return Decision(verdict, chosen, tuple(why), tuple(results), scores, srm, alpha)


def _validate(
    variants: Sequence[VariantData], specs: tuple[SuccessMetric, ...], control: str
) -> None:
    names = [v.name for v in variants]
    if control not in names or len(names) < 2 or len(set(names)) != len(names):
        raise InvalidInputError(
            f"decide() needs the control {control!r} and at least one treatment, names unique; "
            f"got variants {names}",
            field="control",
        )
    for var in variants:
        missing = [s.name for s in specs if s.name not in var.metrics]
        if missing:
            raise InvalidInputError(
                f"variant {var.name!r} has no aggregates for {missing}", field="metrics"
            )


def _evaluate(
    ctrl: VariantData,
    var: VariantData,
    spec: SuccessMetric,
    is_primary: bool,
    level: float,
    power: float,
) -> tuple[MetricResult, list[Reason]]:
    c_agg, t_agg = ctrl.metrics[spec.name], var.metrics[spec.name]
    need = 1 if spec.kind is MetricKind.RATE else 2
    if min(c_agg.n, t_agg.n) < need:
        reason = Reason(
            Finding.INSUFFICIENT_DATA,
            f"{var.name!r} vs {ctrl.name!r} on "
            f"{spec.name}: n = {t_agg.n} vs {c_agg.n}, not enough data yet",
            var.name,
            spec.name,
        )
        return MetricResult(
            var.name, spec.name, is_primary, None, None, None, (Finding.INSUFFICIENT_DATA,)
        ), [reason]
    comp = compare(c_agg, t_agg, alpha=level, mde=spec.mde, relative_mde=spec.relative_mde)
    guard = _guard_interval(t_agg, spec, level)
    pa = _power(c_agg, t_agg, spec, level, power) if is_primary else None
    findings = _findings(comp, guard, pa, spec, t_agg, is_primary)
    result = MetricResult(var.name, spec.name, is_primary, comp, guard, pa, findings)
    return result, [_reason(f, var.name, spec, comp, guard) for f in findings]


def _findings(
    comp: Comparison,
    guard: Interval | None,
    pa: PowerAnalysis | None,
    spec: SuccessMetric,
    agg: Aggregate,
    is_primary: bool,
) -> tuple[Finding, ...]:
    found: list[Finding] = []
    cs = comp.confidence_sequence
    if cs is not None:
        lo, hi = sorted((spec.direction.sign * cs.low, spec.direction.sign * cs.high))
        if lo > 0:
            found.append(Finding.BETTER)
        elif hi < -spec.harm_margin:
            found.append(Finding.WORSE)
        elif is_primary and pa is not None and pa.reached and -pa.mde < cs.low <= cs.high < pa.mde:
            found.append(Finding.EQUIVALENT)
        elif is_primary:
            found.append(Finding.INCONCLUSIVE)
    elif is_primary:
        found.append(Finding.INCONCLUSIVE)
    if spec.threshold is not None:
        if guard is not None and not spec.guard_met(guard.low) and not spec.guard_met(guard.high):
            found.append(Finding.GUARD_VIOLATED)
        elif not spec.guard_met(agg.mean):
            found.append(Finding.GUARD_UNMET)
    return tuple(found)


def _guard_interval(agg: Aggregate, spec: SuccessMetric, level: float) -> Interval | None:
    if spec.threshold is None:
        return None
    var = agg.variance
    if isinstance(agg, Proportion):
        smoothed = (agg.successes + 0.5) / (agg.n + 1)
        var = smoothed * (1 - smoothed)
    mde = None if spec.mde is None else (spec.mde * agg.mean if spec.relative_mde else spec.mde)
    return confidence_sequence(agg.mean, var / agg.n, default_tau(var, mde or None), level)


def _power(
    c_agg: Aggregate, t_agg: Aggregate, spec: SuccessMetric, level: float, power: float
) -> PowerAnalysis | None:
    if spec.mde is None:
        return None
    sd = math.sqrt(c_agg.variance) if spec.kind is MetricKind.MEAN else None
    try:
        return power_analysis(
            spec.kind,
            c_agg.mean,
            spec.mde,
            c_agg.n,
            t_agg.n,
            sd=sd,
            relative=spec.relative_mde,
            alpha=level,
            power=power,
        )
    except InvalidInputError:  # baseline 0 or 1, or no variance yet: no power to report
        return None


def _reason(
    finding: Finding, variant: str, spec: SuccessMetric, comp: Comparison, guard: Interval | None
) -> Reason:
    cs, p = comp.confidence_sequence, comp.always_valid_p_value
    interval = f"[{cs.low:.4g}, {cs.high:.4g}]" if cs else "(none yet)"
    if finding in (Finding.GUARD_VIOLATED, Finding.GUARD_UNMET):
        how = "confidently violates" if finding is Finding.GUARD_VIOLATED else "misses"
        msg = (
            f"{variant!r} {how} the guard {spec.name} "
            f"{'≥' if spec.direction.sign > 0 else '≤'} {spec.threshold}: value "
            f"{comp.treatment_mean:.4g}"
        )
        return Reason(finding, msg, variant, spec.name, comp.treatment_mean, guard, None)
    words = {
        Finding.BETTER: "is significantly better than control",
        Finding.WORSE: "is significantly worse than control",
        Finding.EQUIVALENT: "is equivalent to control within the MDE",
        Finding.INCONCLUSIVE: "is not yet distinguishable from control",
    }[finding]
    msg = (
        f"{variant!r} {words} on {spec.name}: difference {comp.difference:+.4g}, "
        f"always-valid {1 - comp.alpha:.4g} "
        f"interval {interval}, always-valid p = {p:.3g}"
    )
    return Reason(finding, msg, variant, spec.name, comp.difference, cs, p)


def _srm(
    variants: Sequence[VariantData], weights: Mapping[str, float] | None
) -> SampleRatioCheck | None:
    if weights is None or any(v.assigned is None for v in variants):
        return None
    return sample_ratio_mismatch({v.name: int(v.assigned or 0) for v in variants}, weights)


def _score(variant: str, results: list[MetricResult], specs: tuple[SuccessMetric, ...]) -> float:
    weight = {s.name: s.weight for s in specs}
    total = sum(weight.values()) or 1.0
    score = 0.0
    for r in (r for r in results if r.variant == variant):
        if Finding.BETTER in r.findings:
            score += weight[r.metric]
        if any(f in _HARM for f in r.findings):
            score -= weight[r.metric]
    return score / total


def _verdict(
    results: list[MetricResult],
    reasons: list[Reason],
    srm: SampleRatioCheck | None,
    scores: dict[str, float],
    primary: SuccessMetric,
) -> tuple[Verdict, str | None, list[Reason]]:
    harm = [r for r in reasons if r.finding in _HARM]
    if harm:
        return Verdict.STOP_HARM, harm[0].variant, harm
    if srm is not None and srm.mismatch:
        msg = (
            f"sample-ratio mismatch: counts {srm.counts} vs expected {srm.expected} "
            f"(χ² p = {srm.p_value:.3g} < {srm.threshold}); fix assignment before trusting "
            "any result"
        )
        return Verdict.KEEP_RUNNING, None, [Reason(Finding.SAMPLE_RATIO_MISMATCH, msg)]
    prim = [r for r in results if r.primary]
    unmet = {r.variant for r in results if Finding.GUARD_UNMET in r.findings}
    ship = [r for r in prim if Finding.BETTER in r.findings and r.variant not in unmet]
    if ship:
        best = max(ship, key=lambda r: (scores[r.variant], _oriented(r, primary)))
        why = [x for x in reasons if x.variant == best.variant and x.finding is Finding.BETTER]
        return Verdict.SHIP, best.variant, why
    if prim and all(Finding.EQUIVALENT in r.findings for r in prim):
        return Verdict.NO_DIFFERENCE, None, [x for x in reasons if x.finding is Finding.EQUIVALENT]
    return Verdict.KEEP_RUNNING, None, reasons


def _oriented(result: MetricResult, spec: SuccessMetric) -> float:
    return 0.0 if result.comparison is None else spec.direction.sign * result.comparison.difference
