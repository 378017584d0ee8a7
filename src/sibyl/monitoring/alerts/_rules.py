"""Alert rules: what to watch, when it is bad, for how long, and what to say.

A :class:`Rule` is immutable and validated on construction; :meth:`Rule.from_dict` builds one from
JSON-like input (durations as ``"5m"``/``"30s"``/seconds, the condition as ``">"`` or ``"gt"``)
and :meth:`Rule.to_dict` gives that input back (durations in seconds). Every refusal is an
:class:`~sibyl.errors.InvalidInputError` whose ``field`` names the offending rule field
(``labels.model``, ``annotations.runbook``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from sibyl.errors import InvalidInputError
from sibyl.monitoring.alerts._durations import format_duration, parse_duration
from sibyl.monitoring.alerts._template import BUILTIN_FIELDS, check_template, render_template

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,199}")
METRIC = re.compile(r"[A-Za-z_][A-Za-z0-9_:]{0,199}")
LABEL_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
MAX_LABEL_VALUE = 200
RESERVED_LABELS = frozenset({"alertname", "severity"})
"""Labels every alert carries (the rule name and its severity); rules cannot set them."""
DEFAULT_MESSAGE = "{name}: {metric} = {value:.4g} {condition} {threshold:g} ({labels})"


class Condition(StrEnum):
    """How the observed value is compared with the threshold; the alert condition *holds*
    when ``value <op> threshold`` is true."""

    GT = ">"
    GE = ">="
    LT = "<"
    LE = "<="
    EQ = "=="
    NE = "!="

    def holds(self, value: float, threshold: float) -> bool:
        """Whether ``value <op> threshold``."""
        return bool(_COMPARE[self](value, threshold))

    @classmethod
    def parse(cls, value: object) -> Condition:
        """A condition from its symbol (``">="``) or name (``"ge"``)."""
        text = str(value).strip().lower() if isinstance(value, str) else value
        for condition in cls:
            if text in (condition.value, condition.name.lower()):
                return condition
        symbols = ", ".join(f"{c.value} ({c.name.lower()})" for c in cls)
        raise InvalidInputError(
            f"'condition' must be one of {symbols}, got {value!r}", field="condition"
        )


_COMPARE = {
    Condition.GT: lambda v, t: v > t,
    Condition.GE: lambda v, t: v >= t,
    Condition.LT: lambda v, t: v < t,
    Condition.LE: lambda v, t: v <= t,
    Condition.EQ: lambda v, t: v == t,
    Condition.NE: lambda v, t: v != t,
}


class Severity(StrEnum):
    """How urgent a firing alert is (the ``severity`` label; Slack colours follow it)."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True, eq=True)
class Rule:
    """One alert rule.

    The rule observes ``metric`` over the last ``window_s`` seconds for the label set
    ``labels`` (``{"model": "churn"}``), compares it with ``threshold`` by ``condition``, and
    fires once the condition has held for ``for_s`` seconds; after the condition stops holding
    it keeps firing ``keep_firing_for_s`` seconds more (Prometheus semantics). ``message``
    becomes the alert's ``summary`` annotation; ``annotations`` are more templates
    (``description``, ``runbook_url`` …). A disabled rule is kept but not evaluated.
    """

    name: str
    metric: str
    condition: Condition
    threshold: float
    window_s: float = 300.0
    for_s: float = 0.0
    keep_firing_for_s: float = 0.0
    severity: Severity = Severity.WARNING
    labels: Mapping[str, str] = field(default_factory=dict)
    message: str = DEFAULT_MESSAGE
    annotations: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True

    def __post_init__(self) -> None:
        _set = object.__setattr__
        _set(self, "name", _matching(self.name, NAME, "name", "1-200 of A-Z a-z 0-9 _ . : -"))
        _set(self, "metric", _matching(self.metric, METRIC, "metric", "a Prometheus-style name"))
        _set(self, "condition", Condition.parse(self.condition))
        _set(self, "threshold", _number(self.threshold, "threshold"))
        _set(self, "window_s", _duration(self.window_s, "window", positive=True))
        _set(self, "for_s", _duration(self.for_s, "for"))
        _set(self, "keep_firing_for_s", _duration(self.keep_firing_for_s, "keep_firing_for"))
        _set(self, "severity", _severity(self.severity))
        _set(self, "labels", MappingProxyType(_labels(self.labels)))
        _set(self, "message", check_template(self.message, self.labels, field="message"))
        _set(self, "annotations", MappingProxyType(_annotations(self.annotations, self.labels)))
        if not isinstance(self.enabled, bool):
            raise InvalidInputError("'enabled' must be true or false", field="enabled")

    def __hash__(self) -> int:
        return hash(self.name)

    # ---- JSON-like form ------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        """A rule from its JSON form (see :meth:`to_dict`); unknown keys are refused."""
        if not isinstance(data, Mapping):
            raise InvalidInputError("A rule must be a JSON object", field="rule")
        unknown = sorted(set(data) - set(_JSON_KEYS))
        if unknown:
            raise InvalidInputError(
                f"Unknown rule field '{unknown[0]}'; expected: {', '.join(_JSON_KEYS)}",
                field=unknown[0],
            )
        missing = [key for key in ("name", "metric", "condition", "threshold") if key not in data]
        if missing:
            raise InvalidInputError(f"Rule field '{missing[0]}' is required", field=missing[0])
        kwargs = {_JSON_KEYS[key]: value for key, value in data.items()}
        for key in ("window_s", "for_s", "keep_firing_for_s"):
            if key in kwargs:
                kwargs[key] = parse_duration(kwargs[key], field=_ATTR_KEYS[key])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: durations in seconds, enums as their values."""
        out = {key: getattr(self, attr) for key, attr in _JSON_KEYS.items()}
        out["labels"], out["annotations"] = dict(self.labels), dict(self.annotations)
        out["condition"], out["severity"] = self.condition.value, self.severity.value
        return out

    def evolve(self, **changes: Any) -> Rule:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)

    # ---- rendering -----------------------------------------------------------------------

    def render(self, value: float | None, labels: Mapping[str, str]) -> dict[str, str]:
        """The alert's annotations for ``value`` and its full label set: ``summary`` (from
        ``message``) and every entry of ``annotations``."""
        values = self._template_values(value, labels)
        out = {key: render_template(text, values) for key, text in self.annotations.items()}
        out["summary"] = render_template(self.message, values)
        return out

    def _template_values(self, value: float | None, labels: Mapping[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {key: labels.get(key, "") for key in self.labels}
        values.update(
            name=self.name, metric=self.metric, condition=self.condition.value,
            value=math.nan if value is None else value, threshold=self.threshold,
            severity=self.severity.value, window=format_duration(self.window_s),
            labels=", ".join(
                f"{k}={v}" for k, v in sorted(labels.items()) if k not in RESERVED_LABELS
            ),
        )  # fmt: skip
        return values


_JSON_KEYS = {
    "name": "name", "metric": "metric", "condition": "condition", "threshold": "threshold",
    "window": "window_s", "for": "for_s", "keep_firing_for": "keep_firing_for_s",
    "severity": "severity", "labels": "labels", "message": "message",
    "annotations": "annotations", "enabled": "enabled",
}  # fmt: skip
_ATTR_KEYS = {attr: key for key, attr in _JSON_KEYS.items()}
assert set(_JSON_KEYS.values()) == {f.name for f in fields(Rule)}


def _matching(value: object, pattern: re.Pattern[str], name: str, expected: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidInputError(f"'{name}' must be {expected}, got {value!r}", field=name)
    return value


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"'{name}' must be a finite number, got {value!r}", field=name)
    return float(value)


def _duration(value: object, name: str, *, positive: bool = False) -> float:
    if isinstance(value, str):  # constructed directly: only numbers; from_dict parses strings
        raise InvalidInputError(f"'{name}' must be seconds here; Rule.from_dict parses {value!r}",
                                field=name)  # fmt: skip
    seconds = parse_duration(value, field=name)
    if positive and seconds <= 0:
        raise InvalidInputError(f"'{name}' must be longer than 0s", field=name)
    return seconds


def _severity(value: object) -> Severity:
    try:
        return Severity(str(value).lower())
    except ValueError:
        choices = ", ".join(s.value for s in Severity)
        raise InvalidInputError(
            f"'severity' must be one of {choices}, got {value!r}", field="severity"
        ) from None


def _labels(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidInputError("'labels' must be an object of strings", field="labels")
    out: dict[str, str] = {}
    for key, text in value.items():
        where = f"labels.{key}"
        if not isinstance(key, str) or not LABEL_KEY.fullmatch(key) or key.startswith("__"):
            raise InvalidInputError(
                f"Label key {key!r} must be a name of A-Z a-z 0-9 _ (not starting with __)",
                field="labels",
            )
        if key in RESERVED_LABELS or key in BUILTIN_FIELDS:
            taken = ", ".join(sorted(RESERVED_LABELS | BUILTIN_FIELDS))
            raise InvalidInputError(f"Label key '{key}' is reserved ({taken})", field=where)
        if not isinstance(text, str) or not 0 < len(text) <= MAX_LABEL_VALUE:
            raise InvalidInputError(
                f"'{where}' must be a string of 1-{MAX_LABEL_VALUE} characters", field=where
            )
        out[key] = text
    return out


def _annotations(value: object, labels: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidInputError("'annotations' must be an object of templates", field="annotations")
    out: dict[str, str] = {}
    for key, text in value.items():
        if not isinstance(key, str) or not LABEL_KEY.fullmatch(key):
            raise InvalidInputError(
                f"Annotation key {key!r} must be a name of A-Z a-z 0-9 _", field="annotations"
            )
        if key == "summary":
            raise InvalidInputError(
                "The 'summary' annotation comes from 'message'; set that instead",
                field="annotations.summary",
            )
        out[key] = check_template(text, labels, field=f"annotations.{key}")
    return out
