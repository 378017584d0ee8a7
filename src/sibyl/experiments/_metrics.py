"""Success metrics of an experiment: direction, guard threshold, weight, minimum detectable effect.

Written in configuration as ``"success_rate >= 0.95 weight 1.0"`` or
``"avg_latency_ms <= 100 weight 0.5 mde 5"`` (see :meth:`SuccessMetric.parse`).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from sibyl.errors import InvalidInputError
from sibyl.experiments._stats import MetricKind


class Direction(StrEnum):
    """Which way is better for a metric."""

    HIGHER_IS_BETTER = "higher"
    LOWER_IS_BETTER = "lower"

    @property
    def sign(self) -> float:
        """+1 when higher is better, −1 otherwise: ``sign·Δ > 0`` means "better"."""
        return 1.0 if self is Direction.HIGHER_IS_BETTER else -1.0


_RATE_HINTS = ("rate", "accuracy", "conversion", "ctr", "share", "ratio")
_SPEC = re.compile(
    r"^\s*(?P<name>[A-Za-z_][\w.]*)\s*(?P<op>>=|≥|<=|≤)\s*(?P<threshold>[-+\d.eE]+)"
    r"(?P<rest>(?:\s+(?:weight|mde|relative_mde|harm_margin)\s+[-+\d.eE]+)*)\s*$"
)


@dataclass(frozen=True)
class SuccessMetric:
    """One metric the decision rests on.

    * ``threshold`` — a guard: every variant must keep the metric ≥ it (higher is better) or ≤ it
      (lower is better); ``None`` for no guard.
    * ``weight`` — importance; the metric with the largest weight (first on ties) is the
      **primary** metric that ships a variant, the others are guards and enter the score.
    * ``mde`` — minimum detectable effect, absolute in the metric's units, or a fraction of the
      control's value when ``relative_mde``; sets the power analysis and the mSPRT ``τ``.
    * ``harm_margin`` — how much worse (absolute) a variant may be before it counts as harm.
    """

    name: str
    kind: MetricKind
    direction: Direction = Direction.HIGHER_IS_BETTER
    threshold: float | None = None
    weight: float = 1.0
    mde: float | None = None
    relative_mde: bool = False
    harm_margin: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise InvalidInputError(
                f"metric {self.name!r}: weight must be ≥ 0, got {self.weight}", field="weight"
            )
        if self.harm_margin < 0:
            raise InvalidInputError(
                f"metric {self.name!r}: harm_margin must be ≥ 0", field="harm_margin"
            )
        if self.mde is not None and (self.mde == 0 or not math.isfinite(self.mde)):
            raise InvalidInputError(
                f"metric {self.name!r}: mde must be non-zero and finite", field="mde"
            )

    @classmethod
    def parse(cls, text: str, kind: MetricKind | None = None) -> SuccessMetric:
        """Read ``"<name> (>=|<=|≥|≤) <threshold> [weight w] [mde d | relative_mde r]
        [harm_margin m]"``.

        ``>=`` means higher is better. Without ``kind``, names containing rate, accuracy,
        conversion, ctr, share or ratio are rates, others means. Raises ``InvalidInputError``
        with the accepted form otherwise.
        """
        match = _SPEC.match(text)
        if match is None:
            raise InvalidInputError(
                f"cannot read success metric {text!r}; write e.g. "
                "'success_rate >= 0.95 weight 1.0' or 'avg_latency_ms <= 100 weight 0.5 mde 5'",
                field="metrics",
            )
        words = match["rest"].split()
        options = {k: float(v) for k, v in zip(words[::2], words[1::2], strict=True)}
        name = match["name"]
        if kind is None:
            is_rate = any(hint in name.lower() for hint in _RATE_HINTS)
            kind = MetricKind.RATE if is_rate else MetricKind.MEAN
        relative = "relative_mde" in options
        return cls(
            name=name,
            kind=kind,
            direction=(
                Direction.HIGHER_IS_BETTER
                if match["op"] in (">=", "≥")
                else Direction.LOWER_IS_BETTER
            ),
            threshold=float(match["threshold"]),
            weight=options.get("weight", 1.0),
            mde=options.get("relative_mde") if relative else options.get("mde"),
            relative_mde=relative,
            harm_margin=options.get("harm_margin", 0.0),
        )

    def guard_met(self, value: float) -> bool:
        """Whether ``value`` satisfies the threshold (always true without one)."""
        if self.threshold is None:
            return True
        return self.direction.sign * (value - self.threshold) >= 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def primary_metric(metrics: tuple[SuccessMetric, ...]) -> SuccessMetric:
    """The metric with the largest weight; the first one on ties."""
    if not metrics:
        raise InvalidInputError("an experiment needs at least one success metric", field="metrics")
    best = max(m.weight for m in metrics)
    return next(m for m in metrics if m.weight == best)
