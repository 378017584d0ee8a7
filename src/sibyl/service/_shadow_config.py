"""The configuration of a shadow experiment (its ``config`` object, stored as ``routing``).

A shadow experiment names the primary as its control variant (the experiment's model; its
unpinned traffic is what gets mirrored) and one or more candidate variants (a version or an
alias, of the same model or of another one). Its ``config``::

    {"share": 0.2,            # of the primary's unpinned requests mirrored (0 < share ≤ 1)
     "agreement": "auto",     # auto | label | tolerance (see AgreementRule)
     "tolerance": 1e-6,       # |primary − candidate| allowed under the tolerance rule
     "max_concurrent": 16,    # mirrored requests in flight per experiment; more are dropped
     "timeout_ms": 2000}      # the candidate's own deadline
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sibyl.errors import InvalidInputError
from sibyl.service._experiments import NewExperiment
from sibyl.service._shadow_stats import AgreementRule
from sibyl.store import Experiment, Variant

FIELDS = ("share", "agreement", "tolerance", "max_concurrent", "timeout_ms")


@dataclass(frozen=True, slots=True)
class ShadowConfig:
    """A shadow experiment's settings (see the module docstring)."""

    share: float
    agreement: AgreementRule = AgreementRule.AUTO
    tolerance: float = 1e-6
    max_concurrent: int = 16
    timeout_ms: float = 2000.0

    @classmethod
    def parse(cls, raw: Mapping[str, Any], *, strict: bool = True) -> ShadowConfig:
        """Read a config object; ``InvalidInputError`` naming ``config.<field>`` when a value is
        wrong (and, when ``strict``, when a key is unknown)."""
        if strict:
            unknown = sorted(set(raw) - set(FIELDS))
            if unknown:
                raise InvalidInputError(
                    f"unknown shadow setting(s) {unknown}; a shadow's config takes "
                    f"{', '.join(FIELDS)}",
                    field=f"config.{unknown[0]}",
                )
        if "share" not in raw:
            raise InvalidInputError(
                "a shadow needs 'share': the part of the primary's unpinned traffic mirrored "
                "to the candidate, e.g. 0.2",
                field="config.share",
            )
        return cls(
            share=_number(raw, "share", low=0.0, high=1.0, open_low=True),
            agreement=_rule(raw.get("agreement", AgreementRule.AUTO.value)),
            tolerance=_number(raw, "tolerance", low=0.0, default=1e-6),
            max_concurrent=int(_number(raw, "max_concurrent", low=1, default=16, integer=True)),
            timeout_ms=_number(raw, "timeout_ms", low=0.0, default=2000.0, open_low=True),
        )

    def to_json(self) -> dict[str, Any]:
        """The ``routing`` JSON stored with the experiment."""
        out = asdict(self)
        out["agreement"] = self.agreement.value
        return out


def _number(
    raw: Mapping[str, Any],
    key: str,
    *,
    low: float,
    high: float = math.inf,
    default: float | None = None,
    open_low: bool = False,
    integer: bool = False,
) -> float:
    value = raw.get(key, default)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value > low if open_low else value >= low)
    ok = ok and value <= high and (not integer or float(value).is_integer())
    if not ok:
        bound = f"> {low:g}" if open_low else f"≥ {low:g}"
        upper = f" and ≤ {high:g}" if math.isfinite(high) else ""
        kind = "an integer" if integer else "a number"
        raise InvalidInputError(
            f"shadow setting '{key}' must be {kind} {bound}{upper}, got {value!r}",
            field=f"config.{key}",
        )
    return float(value)  # type: ignore[arg-type]


def _rule(value: Any) -> AgreementRule:
    try:
        return AgreementRule(value)
    except ValueError:
        known = ", ".join(r.value for r in AgreementRule)
        raise InvalidInputError(
            f"shadow setting 'agreement' must be one of {known}, got {value!r}",
            field="config.agreement",
        ) from None


def primary_and_candidates(
    variants: tuple[Variant, ...] | list[Variant],
) -> tuple[Variant, list[Variant]]:
    """The primary (the control variant, else the first) and the candidates (the others)."""
    primary = next((v for v in variants if v.is_control), variants[0])
    return primary, [v for v in variants if v is not primary]


def validate_shadow(spec: NewExperiment) -> dict[str, Any]:
    """The validator of ``kind: shadow`` (registered with ``ExperimentService.register_kind``):
    checks the config and the variants, returns the ``routing`` JSON to store."""
    config = ShadowConfig.parse(spec.config)
    variants = [v if v.model else _with_model(v, spec.model) for v in spec.variants]
    primary, candidates = primary_and_candidates(variants)
    if primary.model != spec.model:
        raise InvalidInputError(
            f"the control variant of a shadow is the primary, so it must be model "
            f"'{spec.model}' (e.g. its alias production), not '{primary.model}'",
            field="variants",
        )
    for v in candidates:
        if (v.model, v.version, v.alias) == (primary.model, primary.version, primary.alias):
            raise InvalidInputError(
                f"candidate variant '{v.name}' is the primary itself; name another version",
                field="variants",
            )
    return config.to_json()


def config_of(exp: Experiment) -> ShadowConfig:
    """The config of a stored shadow experiment (keys added after validation are ignored)."""
    return ShadowConfig.parse(exp.routing, strict=False)


def _with_model(v: Variant, model: str) -> Variant:
    return Variant(v.name, model, v.version, v.alias, v.weight, v.is_control)
