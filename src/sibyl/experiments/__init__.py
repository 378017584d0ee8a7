"""Statistics of A/B/n experiments and canaries, as a pure library (no I/O, no state).

Inputs are per-variant aggregates (:class:`Proportion`, :class:`Moments`); outputs are frozen,
JSON-friendly dataclasses (``to_dict()``)::

    compare(control, treatment)        difference, relative lift (delta method), fixed-horizon
                                       z / Welch-t p-value, always-valid mSPRT p-value and
                                       confidence sequence
    sample_ratio_mismatch(counts, w)   χ² goodness of fit, alarm at p < 0.001
    required_sample_size / achieved_power / power_analysis
    decide(variants, metrics, control=…)   keep running / ship X / no difference / stop: harm
    judge_canary(checks)               promote / rollback / wait

Every function is pure (no I/O, no global state) and therefore thread-safe; invalid input raises
``sibyl.errors.InvalidInputError`` naming the field. Formulas and references are in each private
module's docstring: ``_compare`` (z, Welch, delta-method lift), ``_sequential`` (mSPRT, τ),
``_power``, ``_srm``, ``_decision``, ``_canary``.
"""

from sibyl.experiments._canary import (
    CanaryAction,
    CanaryCheck,
    CanaryCheckResult,
    CanaryVerdict,
    judge_canary,
)
from sibyl.experiments._compare import Comparison, compare
from sibyl.experiments._decision import (
    Decision,
    Finding,
    MetricResult,
    Reason,
    VariantData,
    Verdict,
    decide,
)
from sibyl.experiments._metrics import Direction, SuccessMetric, primary_metric
from sibyl.experiments._power import (
    PowerAnalysis,
    achieved_power,
    power_analysis,
    required_sample_size,
)
from sibyl.experiments._sequential import (
    DEFAULT_STANDARDIZED_TAU,
    Interval,
    always_valid_p_value,
    confidence_sequence,
    confidence_sequence_halfwidth,
    default_tau,
    mixture_log_lr,
)
from sibyl.experiments._srm import SRM_ALARM_P, SampleRatioCheck, sample_ratio_mismatch
from sibyl.experiments._stats import Aggregate, LatencySummary, MetricKind, Moments, Proportion

__all__ = [
    "DEFAULT_STANDARDIZED_TAU",
    "SRM_ALARM_P",
    "Aggregate",
    "CanaryAction",
    "CanaryCheck",
    "CanaryCheckResult",
    "CanaryVerdict",
    "Comparison",
    "Decision",
    "Direction",
    "Finding",
    "Interval",
    "LatencySummary",
    "MetricKind",
    "MetricResult",
    "Moments",
    "PowerAnalysis",
    "Proportion",
    "Reason",
    "SampleRatioCheck",
    "SuccessMetric",
    "VariantData",
    "Verdict",
    "achieved_power",
    "always_valid_p_value",
    "compare",
    "confidence_sequence",
    "confidence_sequence_halfwidth",
    "decide",
    "default_tau",
    "judge_canary",
    "mixture_log_lr",
    "power_analysis",
    "primary_metric",
    "required_sample_size",
    "sample_ratio_mismatch",
]
