"""The rules every served model gets unless told otherwise, over four documented metric names.

The names are a contract with whoever binds the :class:`~sibyl.monitoring.alerts.MetricSource`
(``service/container.py``): each is asked for with ``labels={"model": <name>}`` and the rule's
window in seconds, and answers ``None`` when it has no data for that window.

=====================  ======================================================================
``success_rate``       share of prediction requests that succeeded, 0–1
``latency_p95_ms``     95th percentile of server latency, milliseconds
``drift_score_max``    largest drift score over the model's features (and prediction drift)
``accuracy_drop``      reference (training/registration) accuracy minus live accuracy, ≥ 0
                       when worse; ``None`` until enough labelled feedback arrived
=====================  ======================================================================
"""

from __future__ import annotations

from sibyl.monitoring.alerts._rules import Condition, Rule, Severity

SUCCESS_RATE = "success_rate"
LATENCY_P95_MS = "latency_p95_ms"
DRIFT_SCORE_MAX = "drift_score_max"
ACCURACY_DROP = "accuracy_drop"
DEFAULT_METRICS: dict[str, str] = {
    SUCCESS_RATE: "Share of prediction requests that succeeded (0-1) over the window.",
    LATENCY_P95_MS: "95th percentile of server latency over the window, in milliseconds.",
    DRIFT_SCORE_MAX: "Largest drift score across features and predictions over the window.",
    ACCURACY_DROP: "Reference accuracy minus live accuracy (labelled feedback) over the window.",
}
"""The metric names :func:`default_rules` uses, with what each must return."""


def default_rules(model: str) -> list[Rule]:
    """The default rules of ``model``, named ``<model>:<what>`` and labelled ``model=<model>``:

    * ``success_rate < 0.95`` over 5m for 2m (critical; keeps firing 5m after recovery);
    * ``latency_p95_ms > 100`` over 5m for 5m (warning; keeps firing 5m after recovery);
    * ``drift_score_max > 0.15`` over 1h for 15m (warning);
    * ``accuracy_drop > 0.05`` over 24h for 0s (warning: labels are slow, one breach counts).
    """
    labels = {"model": model}
    return [
        Rule(
            f"{model}:success_rate", SUCCESS_RATE, Condition.LT, 0.95, window_s=300.0,
            for_s=120.0, keep_firing_for_s=300.0, severity=Severity.CRITICAL, labels=labels,
            message="Success rate of {model} is {value:.1%} over {window} (below {threshold:.0%})",
        ),
        Rule(
            f"{model}:latency_p95", LATENCY_P95_MS, Condition.GT, 100.0, window_s=300.0,
            for_s=300.0, keep_firing_for_s=300.0, severity=Severity.WARNING, labels=labels,
            message="p95 latency of {model} is {value:.1f} ms over {window} "
            "(above {threshold:g} ms)",
        ),
        Rule(
            f"{model}:drift", DRIFT_SCORE_MAX, Condition.GT, 0.15, window_s=3600.0,
            for_s=900.0, severity=Severity.WARNING, labels=labels,
            message="Drift score of {model} is {value:.3f} over {window} (above {threshold:g})",
        ),
        Rule(
            f"{model}:accuracy_drop", ACCURACY_DROP, Condition.GT, 0.05, window_s=86400.0,
            severity=Severity.WARNING, labels=labels,
            message="Accuracy of {model} is {value:.3f} below its reference over {window} "
            "(more than {threshold:g})",
        ),
    ]  # fmt: skip
