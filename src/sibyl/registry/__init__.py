"""MLflow model registry façade: versions, stages, semver, comparisons, promotion gates, watcher.

Stages are MLflow aliases plus tags, so anything that speaks MLflow sees them::

    production  alias "production" (one version at a time) + tag sibyl.stage=production
    staging     alias "staging"                             + tag sibyl.stage=staging
    archived    no alias; the previous production version   + tag sibyl.stage=archived
    draft       no stage alias, no tag (a freshly registered version)

Promoting to production records the version it replaces in the model tag
``sibyl.previous_production`` (the fallback chain's first step). :class:`RegistryWatcher`
notices alias moves made by anyone by polling :meth:`ModelRegistry.aliases`.
:func:`save_profile` / :func:`load_profile` keep a version's drift reference profile with it
(artifact of its run, tag ``sibyl.reference_profile``).

Importing this package does not import MLflow (≈ 3 s); creating a :class:`ModelRegistry` does.
"""

from sibyl.registry._facade import ModelRegistry
from sibyl.registry._profiles import (
    PROFILE_ARTIFACT,
    load_profile,
    log_profile,
    save_profile,
)
from sibyl.registry._stages import evaluate_gate
from sibyl.registry._types import (
    PREVIOUS_PRODUCTION_TAG,
    PROFILE_TAG,
    SEMVER_TAG,
    STAGE_TAG,
    AliasChange,
    Gate,
    GateResult,
    ModelInfo,
    PromotionResult,
    Stage,
    VersionComparison,
    VersionInfo,
)
from sibyl.registry._watcher import AliasSource, RegistryWatcher, diff_aliases

__all__ = [
    "PREVIOUS_PRODUCTION_TAG",
    "PROFILE_ARTIFACT",
    "PROFILE_TAG",
    "SEMVER_TAG",
    "STAGE_TAG",
    "AliasChange",
    "AliasSource",
    "Gate",
    "GateResult",
    "ModelInfo",
    "ModelRegistry",
    "PromotionResult",
    "RegistryWatcher",
    "Stage",
    "VersionComparison",
    "VersionInfo",
    "diff_aliases",
    "evaluate_gate",
    "load_profile",
    "log_profile",
    "save_profile",
]
