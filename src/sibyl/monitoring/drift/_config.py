"""What a drift check measures and when it calls drift: methods, thresholds, windows.

Every threshold method flags a column when its score is *above* the threshold; every p-value
method flags it when its Benjamini–Hochberg adjusted p-value is at most ``alpha`` (and its effect
size reaches ``min_effect``). Defaults are in :data:`DEFAULT_THRESHOLDS`; ``docs/drift.md``
explains each and the noise floor it sits above.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from sibyl.errors import InvalidInputError


class DriftMethod(StrEnum):
    """A way of comparing a live window of one column with its reference."""

    PSI = "psi"
    """Population stability index over the reference bins (threshold method)."""
    KS = "ks"
    """Two-sample Kolmogorov–Smirnov on the binned CDFs (p-value method; effect: D)."""
    WASSERSTEIN = "wasserstein"
    """Wasserstein-1 distance in units of the reference standard deviation (threshold method)."""
    JENSEN_SHANNON = "jensen_shannon"
    """Jensen–Shannon *distance* (square root of the divergence, base 2, in [0, 1])."""
    KL = "kl"
    """Kullback–Leibler divergence KL(live ‖ reference) in nats (threshold method)."""
    CHI2 = "chi2"
    """Pearson χ² test of homogeneity for categoricals (p-value method; effect: Cohen's w)."""
    MEAN_Z = "mean_z"
    """Welch z-test of the live mean against the reference mean (p-value method; effect:
    standardised mean difference)."""


class DriftStatus(StrEnum):
    """Verdict of a window."""

    OK = "ok"
    DRIFT = "drift"
    INSUFFICIENT_DATA = "insufficient_data"


P_VALUE_METHODS = frozenset({DriftMethod.KS, DriftMethod.CHI2, DriftMethod.MEAN_Z})
NUMERIC_METHODS = (
    DriftMethod.PSI,
    DriftMethod.KS,
    DriftMethod.WASSERSTEIN,
    DriftMethod.JENSEN_SHANNON,
    DriftMethod.KL,
    DriftMethod.MEAN_Z,
)
CATEGORICAL_METHODS = (
    DriftMethod.PSI,
    DriftMethod.JENSEN_SHANNON,
    DriftMethod.KL,
    DriftMethod.CHI2,
)

DEFAULT_THRESHOLDS: Mapping[DriftMethod, float] = {
    DriftMethod.PSI: 0.2,
    DriftMethod.JENSEN_SHANNON: 0.1,
    DriftMethod.KL: 0.1,
    DriftMethod.WASSERSTEIN: 0.1,
}
"""Score thresholds of the threshold methods (p-value methods use ``DriftConfig.alpha``)."""

DEFAULT_WINDOW_ROWS = 2000
FdrScope = Literal["window", "method"]


@dataclass(frozen=True)
class WindowSpec:
    """A sliding window made of ``buckets`` buckets: the last ``rows`` rows or ``seconds``.

    At most one of ``rows`` and ``seconds`` is given (neither: 2,000 rows). A row window
    holds between ``rows·(1 − 1/buckets)`` and ``rows`` rows (a bucket closes when the next
    batch would not fit; a batch larger than a bucket is split); a time window covers between
    ``seconds·(1 − 1/buckets)`` and ``seconds``. More buckets: smoother sliding, more memory.
    """

    rows: int | None = None
    seconds: float | None = None
    buckets: int = 10

    def __post_init__(self) -> None:
        if self.rows is None and self.seconds is None:
            object.__setattr__(self, "rows", DEFAULT_WINDOW_ROWS)
        if self.rows is not None and self.seconds is not None:
            raise InvalidInputError(
                "a drift window is either 'rows' or 'seconds' long; set exactly one",
                field="window",
            )
        _check_positive_int(self.buckets, "window.buckets")
        if self.buckets > 1000:
            raise InvalidInputError(
                f"window buckets must be in 1..1000, got {self.buckets}", field="window.buckets"
            )
        if self.rows is not None:
            _check_positive_int(self.rows, "window.rows")
            if self.rows < self.buckets:
                raise InvalidInputError(
                    f"window rows must be ≥ buckets ({self.buckets}), got {self.rows}",
                    field="window.rows",
                )
        if self.seconds is not None and _number(self.seconds, "window.seconds") <= 0:
            raise InvalidInputError(
                f"window seconds must be > 0, got {self.seconds}", field="window.seconds"
            )


@dataclass(frozen=True)
class DriftConfig:
    """How a window is judged (every field has a default; override what you need).

    ``thresholds`` and ``min_effect`` hold overrides only: :meth:`threshold` falls back to
    :data:`DEFAULT_THRESHOLDS`. ``fdr_scope="window"`` (default) runs one Benjamini–Hochberg
    procedure over every (column, p-value method) pair of the window, so a window without drift
    flags anything with probability ≈ ``alpha`` at most; ``"method"`` runs one per method
    (more power, a false-alarm rate up to ``alpha`` × the number of p-value methods).
    Feature columns and model-output columns are separate families.
    """

    window: WindowSpec = field(default_factory=WindowSpec)
    min_rows: int = 1000
    """Rows a window needs before it is judged (below: ``insufficient_data``)."""
    methods: tuple[DriftMethod, ...] = tuple(DriftMethod)
    thresholds: Mapping[DriftMethod, float] = field(default_factory=dict)
    alpha: float = 0.05
    fdr_scope: FdrScope = "window"
    min_effect: Mapping[DriftMethod, float] = field(default_factory=dict)
    """Smallest effect size for which a p-value method may flag (default 0: significance
    alone). Set it for large windows, where negligible shifts become significant."""
    score_method: DriftMethod = DriftMethod.PSI
    """The method whose score is a column's single ``drift_score``."""
    smoothing: float = 1e-4
    """Added to every bin proportion (then renormalised) before PSI, KL and JS."""

    def __post_init__(self) -> None:
        _check_positive_int(self.min_rows, "min_rows")
        self._normalise()
        if not 0 < self.alpha < 1:
            raise InvalidInputError(f"alpha must be in (0, 1), got {self.alpha}", field="alpha")
        if self.fdr_scope not in ("window", "method"):
            raise InvalidInputError(
                f"fdr_scope must be 'window' or 'method', got {self.fdr_scope!r}",
                field="fdr_scope",
            )
        if not self.methods:
            raise InvalidInputError("at least one drift method is needed", field="methods")
        if not 0 < self.smoothing < 0.01:
            raise InvalidInputError(
                f"smoothing must be in (0, 0.01), got {self.smoothing}", field="smoothing"
            )
        if self.score_method not in self.methods:
            raise InvalidInputError(
                f"score_method {self.score_method.value!r} must be one of the methods",
                field="score_method",
            )
        pvalue = sorted(m.value for m in P_VALUE_METHODS & set(self.thresholds))
        if pvalue:
            raise InvalidInputError(
                f"{pvalue} are p-value methods: they flag at 'alpha' after Benjamini–Hochberg "
                "(set 'alpha', and 'min_effect' for an effect-size floor), not a threshold",
                field="thresholds",
            )

    def _normalise(self) -> None:
        """Accept method names as text; check every number."""
        set_ = object.__setattr__
        set_(
            self, "methods", tuple(dict.fromkeys(parse_method(m, "methods") for m in self.methods))
        )
        set_(self, "score_method", parse_method(self.score_method, "score_method"))
        for name in ("thresholds", "min_effect"):
            values = {}
            for method, value in dict(getattr(self, name)).items():
                number = _number(value, f"{name}.{method}")
                values[parse_method(method, name)] = number
            set_(self, name, values)

    def threshold(self, method: DriftMethod) -> float:
        """Score threshold of a threshold method, ``alpha`` for a p-value method."""
        if method in P_VALUE_METHODS:
            return self.alpha
        return float(self.thresholds.get(method, DEFAULT_THRESHOLDS[method]))

    def effect_floor(self, method: DriftMethod) -> float:
        return float(self.min_effect.get(method, 0.0))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftConfig:
        """Build from JSON/settings: ``{"window": {"rows": 5000}, "thresholds": {"psi": 0.25},
        "methods": ["psi", "ks"], ...}``; unknown keys and methods raise InvalidInputError."""
        known = {
            "window",
            "min_rows",
            "methods",
            "thresholds",
            "alpha",
            "fdr_scope",
            "min_effect",
            "score_method",
            "smoothing",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(
                f"unknown drift setting(s) {unknown}; known: {sorted(known)}", field=unknown[0]
            )
        kwargs: dict[str, Any] = dict(data)
        if "window" in data:
            kwargs["window"] = _window_spec(_mapping(data["window"], "window"))
        if "methods" in data:
            if isinstance(data["methods"], str) or not isinstance(data["methods"], list | tuple):
                raise InvalidInputError("methods must be a list of method names", field="methods")
            kwargs["methods"] = tuple(data["methods"])
        for key in ("thresholds", "min_effect"):
            if key in data:
                kwargs[key] = dict(_mapping(data[key], key))
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": {
                "rows": self.window.rows,
                "seconds": self.window.seconds,
                "buckets": self.window.buckets,
            },
            "min_rows": self.min_rows,
            "methods": [m.value for m in self.methods],
            "thresholds": {
                m.value: self.threshold(m) for m in DriftMethod if m not in P_VALUE_METHODS
            },
            "alpha": self.alpha,
            "fdr_scope": self.fdr_scope,
            "min_effect": {m.value: self.effect_floor(m) for m in P_VALUE_METHODS},
            "score_method": self.score_method.value,
            "smoothing": self.smoothing,
        }


def parse_method(value: object, field: str) -> DriftMethod:
    try:
        return DriftMethod(str(value))
    except ValueError:
        known = ", ".join(m.value for m in DriftMethod)
        raise InvalidInputError(
            f"unknown drift method {value!r}; use one of {known}", field=field
        ) from None


def _mapping(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{field} must be an object, got {value!r}", field=field)
    return value


def _number(value: Any, field: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number >= 0):
        raise InvalidInputError(f"{field} must be a finite number ≥ 0, got {value!r}", field=field)
    return number


def _window_spec(data: Mapping[str, Any]) -> WindowSpec:
    unknown = sorted(set(data) - {"rows", "seconds", "buckets"})
    if unknown:
        raise InvalidInputError(
            f"unknown window setting(s) {unknown}; known: buckets, rows, seconds",
            field=f"window.{unknown[0]}",
        )
    return WindowSpec(**data)


def _check_positive_int(value: int, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{field} must be an integer ≥ 1, got {value!r}", field=field)
