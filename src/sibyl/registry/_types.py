"""Values the registry façade hands out: stages, versions, comparisons, gates, alias changes.

All are frozen dataclasses (safe to share between threads, cheap to send across processes);
none imports MLflow, so ``import sibyl.registry`` stays cheap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sibyl.errors import InvalidInputError

STAGE_TAG = "sibyl.stage"
"""Version tag holding the version's :class:`Stage`."""
SEMVER_TAG = "sibyl.semver"
"""Version tag holding the version's semantic version ``X.Y.Z``."""
PREVIOUS_PRODUCTION_TAG = "sibyl.previous_production"
"""Model tag naming the version that was in production before the current one."""
PROFILE_TAG = "sibyl.reference_profile"
"""Version tag pointing at the version's drift reference profile (``runs:/<run>/<path>``;
written by :func:`sibyl.registry.save_profile`)."""
RESERVED_TAGS = frozenset({STAGE_TAG, SEMVER_TAG, PREVIOUS_PRODUCTION_TAG, PROFILE_TAG})
"""Tags only the façade writes; :meth:`ModelRegistry.set_tags` refuses them."""

_SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")


class Stage(StrEnum):
    """Life-cycle stage of a model version, stored as MLflow aliases plus the ``sibyl.stage`` tag.

    ``PRODUCTION`` and ``STAGING`` are the aliases of the same name (an alias points at one
    version, so there is one production version at a time); ``ARCHIVED`` versions carry no alias;
    a version without alias or tag is a ``DRAFT``.
    """

    DRAFT = "draft"
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"

    @property
    def alias(self) -> str | None:
        """The MLflow alias that marks this stage (``None`` for draft and archived)."""
        return self.value if self in (Stage.PRODUCTION, Stage.STAGING) else None


STAGE_ALIASES = frozenset(s.value for s in (Stage.PRODUCTION, Stage.STAGING))


def parse_stage(value: str | Stage) -> Stage:
    """``value`` as a :class:`Stage`; raises :class:`InvalidInputError` naming the valid ones."""
    try:
        return Stage(str(value).lower())
    except ValueError:
        valid = ", ".join(s.value for s in Stage)
        raise InvalidInputError(
            f"Unknown stage '{value}'; use one of: {valid}", field="stage"
        ) from None


def validate_semver(semver: str) -> str:
    """``semver`` when it is ``MAJOR.MINOR.PATCH`` (e.g. ``1.4.2``), else InvalidInputError."""
    text = semver.strip()
    if not _SEMVER.fullmatch(text):
        raise InvalidInputError(
            f"'{semver}' is not a semantic version; use MAJOR.MINOR.PATCH such as 1.4.2 "
            "(numbers without leading zeros)",
            field="semver",
        )
    return text


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A registered model: its aliases (alias → version) and latest version number."""

    name: str
    description: str
    latest_version: str | None
    aliases: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One model version as sibyl sees it.

    ``tags`` are the version's MLflow tags without the ones surfaced as fields
    (``sibyl.stage``, ``sibyl.semver``). ``flavors`` is empty when reading it would need a
    download (listing and resolving never download; :meth:`ModelRegistry.compare` does).
    """

    name: str
    version: str
    stage: Stage
    aliases: tuple[str, ...]
    semver: str | None
    description: str
    tags: dict[str, str]
    run_id: str | None
    source: str
    created_at: datetime
    flavors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VersionComparison:
    """Two versions side by side; each pair is ``(a, b)``.

    ``params`` holds only differing run parameters unless ``compare(..., only_differences=False)``;
    ``metrics`` holds every metric either run logged.
    """

    name: str
    a: VersionInfo
    b: VersionInfo
    params: dict[str, tuple[str | None, str | None]]
    metrics: dict[str, tuple[float | None, float | None]]
    signature_a: str | None
    signature_b: str | None
    signature_equal: bool
    size_bytes: tuple[int | None, int | None]
    flavors: tuple[tuple[str, ...], tuple[str, ...]]
    only_differences: bool = True


@dataclass(frozen=True, slots=True)
class Gate:
    """Promotion gate: the candidate's ``metric`` may be worse than production's by ``tolerance``.

    ``tolerance`` is absolute (0.01 lets an accuracy of 0.905 replace 0.91).
    """

    metric: str
    higher_is_better: bool = True
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if not self.metric:
            raise InvalidInputError("A gate needs a metric name such as 'accuracy'", field="metric")
        if self.tolerance < 0:
            raise InvalidInputError(
                f"Gate tolerance must be >= 0, got {self.tolerance}", field="tolerance"
            )


@dataclass(frozen=True, slots=True)
class GateResult:
    """What a :class:`Gate` decided; ``message`` explains it in one sentence."""

    passed: bool
    candidate_value: float | None
    production_value: float | None
    message: str


@dataclass(frozen=True, slots=True)
class PromotionResult:
    """Outcome of a promotion: ``previous`` is the version that held the stage before, if any."""

    name: str
    version: str
    stage: Stage
    previous: str | None
    gate: GateResult | None = None


@dataclass(frozen=True, slots=True)
class AliasChange:
    """An alias that appeared (``old_version`` None), moved, or vanished (``new_version`` None)."""

    name: str
    alias: str
    old_version: str | None
    new_version: str | None
