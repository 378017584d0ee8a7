"""Canary configuration: parsed, validated, normalised; and the validator of canary experiments.

A canary is given as ``POST /v1/experiments`` with ``kind: "canary"`` and ``config``, or as
``POST /v1/models/{name}/canary``; the normalised config is stored under ``routing["canary"]``
(every key present, durations in seconds)::

    key                   default     meaning
    steps                 [10,50,100] the candidate's share of traffic (%) per step: increasing,
                                      ending at 100, with at least one step below 100
    dwell                 "10m"       least time a step lasts (seconds, or "500ms"/"30s"/"10m"/"1h")
    max_wait              = dwell     how long past the dwell a step may wait for a verdict
    on_timeout            "rollback"  then: "rollback" (the safe default) or "promote" (the step
                                      counts as passed; after the last step the candidate ships)
    alpha                 0.05        level of each check's always-valid test
    min_requests          100         requests per arm within the step before it may pass
    error_rate_margin     0.01        tolerated absolute rise of the error rate (null: no check)
    latency_margin        0.2         tolerated relative rise of the mean latency (null: no check)
    quality_metric        null        feedback metric, higher is better: "success_rate" or
                                      "value_mean" (null: no quality check)
    quality_margin        0.0         tolerated absolute fall of the quality metric
    quality_min_feedback  30          feedback items per arm before the quality check counts

A canary experiment has exactly two variants of the experiment's model, each pinned to a version
number: the control (the *baseline*, normally the production version) and the *candidate*; their
weights must already give the candidate the first step's share (e.g. 90 and 10).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, TypeVar

from sibyl.errors import InvalidInputError
from sibyl.service._experiments import NewExperiment
from sibyl.store import Experiment, Variant

CONFIG_KEY = "canary"
"""Key of the normalised config in the experiment's ``routing`` JSON."""

E = TypeVar("E", bound=StrEnum)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class OnTimeout(StrEnum):
    """What a step does when its dwell and ``max_wait`` are over without a verdict."""

    ROLLBACK = "rollback"
    PROMOTE = "promote"


class QualityMetric(StrEnum):
    """Feedback metric of the quality check (success feedback counts as value 1 / 0)."""

    SUCCESS_RATE = "success_rate"
    VALUE_MEAN = "value_mean"


def parse_duration(value: Any, field: str) -> float:
    """Seconds from a number or ``"<number>[ms|s|m|h]"``; ``InvalidInputError`` otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match[1]) * _UNIT_S[match[2]]
    else:
        raise InvalidInputError(
            f"'{field}' must be seconds or a duration such as '30s', '10m' or '1h', got {value!r}",
            field=field,
        )
    if not (math.isfinite(seconds) and seconds >= 0):
        raise InvalidInputError(f"'{field}' must be ≥ 0, got {value!r}", field=field)
    return seconds


@dataclass(frozen=True, slots=True)
class CanaryConfig:
    """A validated canary configuration (see the module docstring for every field)."""

    steps: tuple[float, ...] = (10.0, 50.0, 100.0)
    dwell_s: float = 600.0
    max_wait_s: float = 600.0
    on_timeout: OnTimeout = OnTimeout.ROLLBACK
    alpha: float = 0.05
    min_requests: int = 100
    error_rate_margin: float | None = 0.01
    latency_margin: float | None = 0.2
    quality_metric: QualityMetric | None = None
    quality_margin: float = 0.0
    quality_min_feedback: int = 30

    @classmethod
    def parse(cls, raw: Mapping[str, Any], prefix: str = "") -> CanaryConfig:
        """From user input (``prefix`` goes before field names in errors, e.g. ``"config."``).
        Missing keys take the defaults; ``max_wait`` defaults to the dwell."""
        unknown = sorted(set(raw) - _KEYS)
        if unknown:
            raise InvalidInputError(
                f"unknown canary setting(s) {unknown}; known: {sorted(_KEYS)}",
                field=f"{prefix}{unknown[0]}",
            )
        d = cls()
        dwell = parse_duration(raw.get("dwell", d.dwell_s), f"{prefix}dwell")
        return cls(
            steps=_steps(raw.get("steps", d.steps), f"{prefix}steps"),
            dwell_s=dwell,
            max_wait_s=parse_duration(raw.get("max_wait", dwell), f"{prefix}max_wait"),
            on_timeout=_enum(OnTimeout, raw.get("on_timeout", d.on_timeout), prefix, "on_timeout"),
            alpha=_number(
                raw.get("alpha", d.alpha), f"{prefix}alpha", high=1, low_open=True, high_open=True
            ),
            min_requests=_count(raw.get("min_requests", d.min_requests), f"{prefix}min_requests"),
            error_rate_margin=_margin(raw, "error_rate_margin", d.error_rate_margin, prefix),
            latency_margin=_margin(raw, "latency_margin", d.latency_margin, prefix),
            quality_metric=_quality(raw.get("quality_metric"), prefix),
            quality_margin=_margin(raw, "quality_margin", d.quality_margin, prefix) or 0.0,
            quality_min_feedback=_count(
                raw.get("quality_min_feedback", d.quality_min_feedback),
                f"{prefix}quality_min_feedback",
            ),
        )._checked(prefix)

    def _checked(self, prefix: str) -> CanaryConfig:
        if self.error_rate_margin is None and self.latency_margin is None and not self.quality:
            raise InvalidInputError(
                "a canary needs at least one check: set error_rate_margin, latency_margin or "
                "quality_metric",
                field=f"{prefix}error_rate_margin",
            )
        return self

    @property
    def quality(self) -> bool:
        """Whether the quality check is on."""
        return self.quality_metric is not None

    @classmethod
    def from_routing(cls, routing: Mapping[str, Any]) -> CanaryConfig:
        """The config stored in an experiment's ``routing`` (``InvalidInputError`` if absent)."""
        raw = routing.get(CONFIG_KEY)
        if not isinstance(raw, Mapping):
            raise InvalidInputError("this experiment has no canary config", field="routing")
        stored = dict(raw)
        stored["dwell"], stored["max_wait"] = stored.pop("dwell_s"), stored.pop("max_wait_s")
        return cls.parse(stored)

    def to_json(self) -> dict[str, Any]:
        """The normalised form stored in ``routing["canary"]``."""
        out = asdict(self)
        out["steps"] = list(self.steps)
        out["on_timeout"] = self.on_timeout.value
        out["quality_metric"] = self.quality_metric.value if self.quality_metric else None
        return out

    def weights(self, step: int, baseline: str, candidate: str) -> dict[str, float]:
        """Variant weights (percent) at ``step``."""
        share = self.steps[step]
        return {baseline: 100.0 - share, candidate: share}

    def is_last(self, step: int) -> bool:
        return step >= len(self.steps) - 1


_KEYS = frozenset(
    {
        "steps",
        "dwell",
        "max_wait",
        "on_timeout",
        "alpha",
        "min_requests",
        "error_rate_margin",
        "latency_margin",
        "quality_metric",
        "quality_margin",
        "quality_min_feedback",
    }
)


def roles(exp: Experiment) -> tuple[Variant, Variant]:
    """``(baseline, candidate)`` of a canary experiment: the control and the other variant."""
    baseline = exp.control or exp.variants[0]
    candidate = next(v for v in exp.variants if v.name != baseline.name)
    return baseline, candidate


def validate_canary(spec: NewExperiment) -> dict[str, Any]:
    """The :data:`~sibyl.service.KindValidator` of canaries: checks the config and the two
    pinned variants, returns the ``routing`` to store."""
    config = CanaryConfig.parse(spec.config, prefix="config.")
    if len(spec.variants) != 2:
        raise InvalidInputError(
            f"a canary has exactly two variants (the baseline, marked control, and the "
            f"candidate), got {len(spec.variants)}",
            field="variants",
        )
    baseline = next((v for v in spec.variants if v.is_control), spec.variants[0])
    candidate = next(v for v in spec.variants if v is not baseline)
    for v in (baseline, candidate):
        _check_pinned(v, spec.model)
    if baseline.version == candidate.version:
        raise InvalidInputError(
            f"the baseline and the candidate are both version {baseline.version}; canary "
            "another version against the production one",
            field="variants",
        )
    _check_first_share(config, baseline, candidate)
    return {CONFIG_KEY: config.to_json()}


def _check_pinned(v: Variant, model: str) -> None:
    if v.model and v.model != model:
        raise InvalidInputError(
            f"variant '{v.name}' is of model '{v.model}'; both canary variants are versions "
            f"of '{model}'",
            field="variants",
        )
    if v.version is None or not v.version.isdigit():
        raise InvalidInputError(
            f"variant '{v.name}' must name a version number, not an alias (pin the baseline to "
            "the production version, e.g. 3), or let POST /v1/models/{name}/canary resolve it",
            field="variants",
        )


def _check_first_share(config: CanaryConfig, baseline: Variant, candidate: Variant) -> None:
    total = baseline.weight + candidate.weight
    want = config.steps[0]
    if total <= 0 or abs(100.0 * candidate.weight / total - want) > 1e-6:
        raise InvalidInputError(
            f"the variant weights must give the candidate the first step's share: weight "
            f"{100 - want:g} for '{baseline.name}' and {want:g} for '{candidate.name}'",
            field="variants",
        )


def _steps(value: Any, field: str) -> tuple[float, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise InvalidInputError(
            f"'{field}' must be a list of percentages such as [10, 50, 100]", field=field
        )
    steps = tuple(_number(v, field, high=100, low_open=True) for v in value)
    if any(b <= a for a, b in itertools.pairwise(steps)) or steps[-1] != 100:
        raise InvalidInputError(
            f"'{field}' must increase strictly and end at 100, got {list(value)}", field=field
        )
    if len(steps) < 2:
        raise InvalidInputError(
            f"'{field}' needs a step below 100 so the baseline serves beside the candidate "
            "(e.g. [10, 100])",
            field=field,
        )
    return steps


def _number(
    value: Any,
    field: str,
    *,
    low: float = 0.0,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float within the bounds (open or closed at each end)."""
    x = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    above = x > low if low_open else x >= low
    below = x < high if high_open else x <= high
    if not (math.isfinite(x) and above and below):
        bounds = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise InvalidInputError(
            f"'{field}' must be a number in {bounds}, got {value!r}", field=field
        )
    return x


def _count(value: Any, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInputError(f"'{field}' must be an integer ≥ 1, got {value!r}", field=field)
    return value


def _margin(raw: Mapping[str, Any], key: str, default: float | None, prefix: str) -> float | None:
    value = raw.get(key, default)
    return None if value is None else _number(value, f"{prefix}{key}")


def _quality(value: Any, prefix: str) -> QualityMetric | None:
    return None if value is None else _enum(QualityMetric, value, prefix, "quality_metric")


def _enum(kind: type[E], value: Any, prefix: str, key: str) -> E:
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(repr(k.value) for k in kind)
        raise InvalidInputError(
            f"'{prefix}{key}' must be one of {known}, got {value!r}", field=f"{prefix}{key}"
        ) from None
