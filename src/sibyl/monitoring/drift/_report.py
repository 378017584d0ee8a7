"""What a drift check returns: frozen, JSON-friendly dataclasses (``to_dict()``).

``DriftReport`` → one ``ColumnDrift`` per feature and per model-output column → one
``MethodResult`` per applicable method. Non-finite numbers (an infinite z) become ``None`` in
``to_dict``; times are ISO 8601 UTC strings there and epoch seconds on the objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sibyl.monitoring.drift._config import DriftMethod, DriftStatus
from sibyl.monitoring.drift._profile import ColumnKind

OUTPUT_PREFIX = "output:"
"""Prefix of model-output columns in :meth:`DriftReport.score_samples` (``output:proba``)."""


@dataclass(frozen=True)
class MethodResult:
    """One method on one column.

    ``score`` is the method's statistic (PSI, D, W1/σ, JS distance, KL, χ², z). ``effect`` is
    its sample-size-free effect size (the score itself for threshold methods; D for KS,
    Cohen's w for χ², the standardised mean difference for mean_z). ``p_value`` and
    ``p_adjusted`` (Benjamini–Hochberg) exist for p-value methods only, which flag when
    ``p_adjusted ≤ threshold`` (= alpha). Threshold methods flag when
    ``score > threshold + noise_floor``: ``noise_floor`` is the score sampling noise alone
    produces on average at this window's size (it shrinks as 1/n, 1/√n for Wasserstein).
    """

    method: DriftMethod
    score: float
    effect: float
    threshold: float
    drifted: bool
    p_value: float | None = None
    p_adjusted: float | None = None
    noise_floor: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method.value,
            "score": _num(self.score),
            "effect": _num(self.effect),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "p_value": _num(self.p_value),
            "p_adjusted": _num(self.p_adjusted),
            "noise_floor": _num(self.noise_floor),
        }


@dataclass(frozen=True)
class ColumnStats:
    """Live and reference summaries of a column over the window.

    ``mean``/``std`` are for numeric columns (``None`` otherwise or without values);
    ``other_share`` is the share of categorical values outside the reference's top values.
    """

    rows: int
    null_share: float
    reference_null_share: float
    mean: float | None = None
    std: float | None = None
    reference_mean: float | None = None
    reference_std: float | None = None
    other_share: float | None = None
    reference_other_share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: _num(v) if isinstance(v, float) else v for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class ColumnDrift:
    """One column's verdict: ``drifted`` when any method flagged it; ``drift_score`` is the
    score of the configured ``score_method`` (``None`` when not judged or not applicable)."""

    name: str
    kind: ColumnKind
    drifted: bool
    drift_score: float | None
    stats: ColumnStats
    methods: tuple[MethodResult, ...] = ()

    def method(self, method: DriftMethod | str) -> MethodResult | None:
        for result in self.methods:
            if result.method == method:
                return result
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "drifted": self.drifted,
            "drift_score": _num(self.drift_score),
            "stats": self.stats.to_dict(),
            "methods": {r.method.value: r.to_dict() for r in self.methods},
        }


@dataclass(frozen=True)
class DriftReport:
    """Drift of one window against the reference profile.

    ``status`` is DRIFT when any feature or output column drifted, INSUFFICIENT_DATA while the
    window holds fewer than ``min_rows`` rows (columns then carry stats but no methods).
    """

    status: DriftStatus
    feature_status: DriftStatus
    prediction_status: DriftStatus
    rows: int
    min_rows: int
    start: float | None
    end: float | None
    features: tuple[ColumnDrift, ...]
    predictions: tuple[ColumnDrift, ...]
    alpha: float
    fdr_scope: str
    generated_at: float
    profile: dict[str, Any] = field(default_factory=dict)
    """``created_at``, ``source`` and ``rows`` of the reference profile."""

    @property
    def drifted_features(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.features if c.drifted)

    @property
    def drifted_predictions(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.predictions if c.drifted)

    def column(self, name: str) -> ColumnDrift:
        for c in self.features:
            if c.name == name:
                return c
        for c in self.predictions:
            if c.name == name or OUTPUT_PREFIX + c.name == name:
                return c
        raise KeyError(name)

    def score_samples(self) -> list[tuple[str, str, float]]:
        """``(feature, method, score)`` for the ``ml_drift_score`` gauge: every finite method
        score of every judged column; output columns carry the ``output:`` prefix."""
        samples: list[tuple[str, str, float]] = []
        for prefix, columns in (("", self.features), (OUTPUT_PREFIX, self.predictions)):
            for column in columns:
                samples.extend(
                    (prefix + column.name, r.method.value, r.score)
                    for r in column.methods
                    if math.isfinite(r.score)
                )
        return samples

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "feature_status": self.feature_status.value,
            "prediction_status": self.prediction_status.value,
            "rows": self.rows,
            "min_rows": self.min_rows,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "generated_at": _iso(self.generated_at),
            "alpha": self.alpha,
            "fdr_scope": self.fdr_scope,
            "drifted_features": list(self.drifted_features),
            "drifted_predictions": list(self.drifted_predictions),
            "features": [c.to_dict() for c in self.features],
            "predictions": [c.to_dict() for c in self.predictions],
            "profile": dict(self.profile),
        }


def _num(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()
