"""Per-variant aggregates: the inputs of every test in this package.

The store and the service keep running sums; these frozen dataclasses are what they hand over.
A rate metric (conversion, success, accuracy, error rate) is a :class:`Proportion`; a numeric
metric (mean outcome, mean latency) is a :class:`Moments`; latency percentiles for display are a
:class:`LatencySummary`. Constructors validate and raise ``InvalidInputError`` naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from sibyl.errors import InvalidInputError


class MetricKind(StrEnum):
    """How a metric is aggregated: a rate of 0/1 outcomes or the mean of a numeric outcome."""

    RATE = "rate"
    MEAN = "mean"


@dataclass(frozen=True)
class Proportion:
    """``successes`` out of ``n`` Bernoulli outcomes (for an error rate, successes = errors).

    Per-observation variance is the plug-in ``p̂(1 − p̂)``.
    """

    n: int
    successes: int

    def __post_init__(self) -> None:
        if self.n < 0 or not 0 <= self.successes <= self.n:
            raise InvalidInputError(
                f"a proportion needs 0 ≤ successes ≤ n, got successes={self.successes}, n={self.n}",
                field="successes",
            )

    @property
    def kind(self) -> MetricKind:
        return MetricKind.RATE

    @property
    def mean(self) -> float:
        """``p̂ = successes / n`` (0 when ``n == 0``)."""
        return self.successes / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """Per-observation variance ``p̂(1 − p̂)``."""
        return self.mean * (1.0 - self.mean)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, **asdict(self), "mean": self.mean}


@dataclass(frozen=True)
class Moments:
    """Count, mean and unbiased sample variance (``ddof = 1``) of a numeric outcome."""

    n: int
    mean: float
    variance: float

    def __post_init__(self) -> None:
        if self.n < 0:
            raise InvalidInputError(f"n must be ≥ 0, got {self.n}", field="n")
        if not (math.isfinite(self.mean) and math.isfinite(self.variance)) or self.variance < 0:
            raise InvalidInputError(
                f"mean and variance must be finite and variance ≥ 0, got mean={self.mean}, "
                f"variance={self.variance}",
                field="variance",
            )

    @property
    def kind(self) -> MetricKind:
        return MetricKind.MEAN

    @classmethod
    def from_sums(cls, n: int, total: float, total_sq: float) -> Moments:
        """From running sums ``Σx`` and ``Σx²``: ``s² = (Σx² − n·x̄²) / (n − 1)``, clipped at 0.

        Running sums lose precision when ``|x̄| ≫ s`` (catastrophic cancellation); stores that
        can should keep a shifted sum or Welford's ``M2`` and use the constructor directly.
        """
        if n == 0:
            return cls(0, 0.0, 0.0)
        mean = total / n
        var = max(0.0, (total_sq - n * mean * mean) / (n - 1)) if n > 1 else 0.0
        return cls(n, mean, var)

    @classmethod
    def from_samples(cls, values: Sequence[float] | np.ndarray[Any, Any]) -> Moments:
        """From raw observations (e.g. latencies in ms)."""
        arr = np.asarray(values, dtype=float)
        if arr.size == 0:
            return cls(0, 0.0, 0.0)
        var = float(arr.var(ddof=1)) if arr.size > 1 else 0.0
        return cls(int(arr.size), float(arr.mean()), var)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, **asdict(self)}


Aggregate = Proportion | Moments


@dataclass(frozen=True)
class LatencySummary:
    """Descriptive latency percentiles of one variant (p50/p95/p99, in the samples' unit).

    For display only: comparisons of latency use the mean (a :class:`Moments`), whose sampling
    distribution is normal at serving volumes; percentile comparisons are not tested here.
    """

    n: int
    p50: float | None
    p95: float | None
    p99: float | None

    @classmethod
    def from_samples(cls, values: Sequence[float] | np.ndarray[Any, Any]) -> LatencySummary:
        arr = np.asarray(values, dtype=float)
        if arr.size == 0:
            return cls(0, None, None, None)
        p50, p95, p99 = (float(q) for q in np.quantile(arr, [0.5, 0.95, 0.99]))
        return cls(int(arr.size), p50, p95, p99)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
