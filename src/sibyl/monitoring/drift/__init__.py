"""Drift detection: reference profiles, live sliding windows, per-column tests, reports.

A pure library (no I/O besides what the caller hands in; the registry module
``sibyl.registry._profiles`` stores profiles with MLflow versions)::

    profile = build_profile(train_df, model_outputs)      # ReferenceProfile, JSON round-trips
    monitor = DriftMonitor(profile, DriftConfig())        # one per model version
    monitor.observe(batch, prediction)                    # O(1) per column per row, thread-safe
    report = monitor.report()                             # DriftReport (to_dict() for JSON)
    report.score_samples()                                # (feature, method, score) for gauges
    compare(profile, uploaded_df)                         # one-shot check of a whole data set

Methods per column (``DriftMethod``): PSI, Kolmogorov–Smirnov on the binned CDFs,
Wasserstein-1 / reference std, Jensen–Shannon distance, KL, χ² (categoricals) and a Welch
z-test of the mean. p-value methods are adjusted with Benjamini–Hochberg across the window's
columns; every result carries its effect size. Formulas: ``_methods``; the bin layout:
``_profile``; the window: ``_window``; defaults and how to choose them: ``docs/drift.md``.
"""

from sibyl.monitoring.drift._build import build_profile, profile_column
from sibyl.monitoring.drift._config import (
    DEFAULT_THRESHOLDS,
    P_VALUE_METHODS,
    DriftConfig,
    DriftMethod,
    DriftStatus,
    WindowSpec,
)
from sibyl.monitoring.drift._monitor import DriftMonitor, compare
from sibyl.monitoring.drift._profile import (
    PROFILE_FORMAT,
    PROFILE_FORMAT_VERSION,
    CategoricalProfile,
    ColumnKind,
    NumericProfile,
    OutputKind,
    ReferenceProfile,
)
from sibyl.monitoring.drift._report import (
    OUTPUT_PREFIX,
    ColumnDrift,
    ColumnStats,
    DriftReport,
    MethodResult,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "OUTPUT_PREFIX",
    "PROFILE_FORMAT",
    "PROFILE_FORMAT_VERSION",
    "P_VALUE_METHODS",
    "CategoricalProfile",
    "ColumnDrift",
    "ColumnKind",
    "ColumnStats",
    "DriftConfig",
    "DriftMethod",
    "DriftMonitor",
    "DriftReport",
    "DriftStatus",
    "MethodResult",
    "NumericProfile",
    "OutputKind",
    "ReferenceProfile",
    "WindowSpec",
    "build_profile",
    "compare",
    "profile_column",
]
