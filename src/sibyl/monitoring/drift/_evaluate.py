"""A window's summed state vector → :class:`DriftReport` (pure; formulas in ``_methods``).

Feature columns and output columns are separate multiple-testing families. In each family the
p-values of the p-value methods are adjusted with Benjamini–Hochberg (one procedure over every
(column, method) pair, or one per method — ``DriftConfig.fdr_scope``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from sibyl.monitoring.drift import _methods as m
from sibyl.monitoring.drift._config import (
    CATEGORICAL_METHODS,
    NUMERIC_METHODS,
    P_VALUE_METHODS,
    DriftConfig,
    DriftMethod,
    DriftStatus,
)
from sibyl.monitoring.drift._encode import Encoder
from sibyl.monitoring.drift._profile import (
    NULL_BIN,
    OTHER_BIN,
    CategoricalProfile,
    ColumnProfile,
    NumericProfile,
)
from sibyl.monitoring.drift._report import ColumnDrift, ColumnStats, DriftReport, MethodResult
from sibyl.monitoring.drift._window import WindowTotal


@dataclass
class _Raw:
    method: DriftMethod
    score: float
    effect: float
    p_value: float | None = None
    p_adjusted: float | None = None
    noise_floor: float | None = None


def evaluate(
    encoder: Encoder, total: WindowTotal, config: DriftConfig, now: float | None = None
) -> DriftReport:
    """Judge ``total`` (the window) against ``encoder.profile`` under ``config``."""
    profile = encoder.profile
    judged = total.rows >= config.min_rows
    stats, raws = [], []
    for i, column in enumerate(encoder.columns):
        # a column is judged on its own rows: outputs may be missing from some batches
        s, r = _column(encoder, i, column, total.vector, config, judged)
        stats.append(s)
        raws.append(r)
    n_feat = len(profile.features)
    features = _family(encoder.columns[:n_feat], stats[:n_feat], raws[:n_feat], config)
    outputs = _family(encoder.columns[n_feat:], stats[n_feat:], raws[n_feat:], config)
    feature_status, prediction_status = _status(features, judged), _status(outputs, judged)
    worst = (
        DriftStatus.DRIFT
        if DriftStatus.DRIFT in (feature_status, prediction_status)
        else DriftStatus.OK
        if judged
        else DriftStatus.INSUFFICIENT_DATA
    )
    return DriftReport(
        status=worst,
        feature_status=feature_status,
        prediction_status=prediction_status,
        rows=total.rows,
        min_rows=config.min_rows,
        start=total.start,
        end=total.end,
        features=features,
        predictions=outputs,
        alpha=config.alpha,
        fdr_scope=config.fdr_scope,
        generated_at=time.time() if now is None else now,
        profile={"created_at": profile.created_at, "source": profile.source, "rows": profile.rows},
    )


def _status(columns: tuple[ColumnDrift, ...], judged: bool) -> DriftStatus:
    """INSUFFICIENT_DATA also when no column of the family was judged (outputs never seen)."""
    if not judged or (columns and not any(c.methods for c in columns)):
        return DriftStatus.INSUFFICIENT_DATA
    return DriftStatus.DRIFT if any(c.drifted for c in columns) else DriftStatus.OK


# ---- one column ------------------------------------------------------------------------------


def _column(
    encoder: Encoder,
    i: int,
    column: ColumnProfile,
    vector: np.ndarray,
    config: DriftConfig,
    judged: bool,
) -> tuple[ColumnStats, list[_Raw]]:
    start = int(encoder.bin_offsets[i])
    live = vector[start : start + int(encoder.bin_sizes[i])]
    ref = np.asarray(column.counts, dtype=np.float64)
    if isinstance(column, NumericProfile):
        j = encoder.numeric_index.index(i)
        at = encoder.n_bins + int(encoder.excess_offsets[j])
        excess = vector[at : at + len(live)]
        moments = vector[encoder.n_bins + encoder.n_excess :].reshape(2, encoder.n_numeric)[:, j]
        stats = _numeric_stats(column, live, moments)
        enough = judged and stats.rows >= config.min_rows
        raws = _numeric_methods(column, live, ref, excess, moments, config) if enough else []
    else:
        stats = _categorical_stats(column, live)
        enough = judged and stats.rows >= config.min_rows
        raws = _categorical_methods(live, ref, config) if enough else []
    return stats, raws


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts)


def _numeric_stats(column: NumericProfile, live: np.ndarray, sums: np.ndarray) -> ColumnStats:
    rows, n = int(live.sum()), float(live[1:].sum())
    scale = column.std if column.std > 0 else 1.0
    mean = std = None
    if n > 0:
        mean_z = sums[0] / n
        mean = column.mean + scale * mean_z
        if n > 1:
            std = scale * math.sqrt(max(sums[1] - n * mean_z * mean_z, 0.0) / (n - 1))
    return ColumnStats(
        rows, _share(live[NULL_BIN], rows), column.null_share, mean, std, column.mean, column.std
    )


def _categorical_stats(column: CategoricalProfile, live: np.ndarray) -> ColumnStats:
    rows = int(live.sum())
    return ColumnStats(
        rows,
        _share(live[NULL_BIN], rows),
        column.null_share,
        other_share=_share(live[OTHER_BIN], rows),
        reference_other_share=_share(column.counts[OTHER_BIN], column.n),
    )


def _share(part: float, whole: float) -> float:
    return float(part) / whole if whole else 0.0


def _numeric_methods(
    column: NumericProfile,
    live: np.ndarray,
    ref: np.ndarray,
    excess: np.ndarray,
    sums: np.ndarray,
    config: DriftConfig,
) -> list[_Raw]:
    eps = config.smoothing
    out: list[_Raw] = []
    for method in (mm for mm in config.methods if mm in NUMERIC_METHODS):
        if method in (DriftMethod.PSI, DriftMethod.KL, DriftMethod.JENSEN_SHANNON):
            out.append(_divergence(method, live, ref, eps))
        elif method is DriftMethod.KS:
            d, p = m.ks_binned(live[1:], ref[1:])
            out.append(_Raw(method, d, d, p))
        elif method is DriftMethod.WASSERSTEIN:
            w = m.wasserstein_binned(
                np.asarray(column.edges),
                live[1:],
                ref[1:],
                excess[1:],
                np.asarray(column.excess[1:]),
            )
            scale = column.std if column.std > 0 else 1.0
            floor = m.wasserstein_noise(
                np.asarray(column.edges), live[1:].sum(), ref[1:], np.asarray(column.excess[1:])
            )
            out.append(_Raw(method, w / scale, w / scale, noise_floor=floor / scale))
        else:  # MEAN_Z
            z, d, p = m.mean_z(
                float(live[1:].sum()),
                float(sums[0]),
                float(sums[1]),
                float(ref[1:].sum()),
                column.std,
            )
            out.append(_Raw(method, z, d, p))
    return out


def _categorical_methods(live: np.ndarray, ref: np.ndarray, config: DriftConfig) -> list[_Raw]:
    eps = config.smoothing
    out: list[_Raw] = []
    for method in (mm for mm in config.methods if mm in CATEGORICAL_METHODS):
        if method is DriftMethod.CHI2:
            statistic, p, _df = m.chi2_homogeneity(live, ref)
            out.append(_Raw(method, statistic, m.cohens_w(_shares(live), _shares(ref), eps), p))
        else:
            out.append(_divergence(method, live, ref, eps))
    return out


def _divergence(method: DriftMethod, live: np.ndarray, ref: np.ndarray, eps: float) -> _Raw:
    """PSI, KL or JS from bin counts, with its noise floor at these sample sizes."""
    p, q = _shares(live), _shares(ref)
    floor = m.divergence_noise(method.value, live.sum(), ref)
    if method is DriftMethod.PSI:
        score = m.psi(p, q, eps)
    elif method is DriftMethod.KL:
        score = m.kl(p, q, eps)
    else:
        score = m.js_distance(p, q, eps)
    return _Raw(method, score, score, noise_floor=floor)


# ---- a family of columns: multiple testing and verdicts ----------------------------------------


def _family(
    columns: tuple[ColumnProfile, ...],
    stats: list[ColumnStats],
    raws: list[list[_Raw]],
    config: DriftConfig,
) -> tuple[ColumnDrift, ...]:
    _adjust([r for rs in raws for r in rs if r.p_value is not None], config)
    out = []
    for column, stat, rs in zip(columns, stats, raws, strict=True):
        results = tuple(_result(r, config) for r in rs)
        score = next((r.score for r in results if r.method is config.score_method), None)
        drifted = any(r.drifted for r in results)
        out.append(ColumnDrift(column.name, column.kind, drifted, score, stat, results))
    return tuple(out)


def _adjust(tested: list[_Raw], config: DriftConfig) -> None:
    groups = (
        [tested]
        if config.fdr_scope == "window"
        else [[r for r in tested if r.method is mm] for mm in P_VALUE_METHODS]
    )
    for group in groups:
        if not group:
            continue
        adjusted = m.benjamini_hochberg(np.array([r.p_value for r in group]))
        for r, q in zip(group, adjusted.tolist(), strict=True):
            r.p_adjusted = q


def _result(raw: _Raw, config: DriftConfig) -> MethodResult:
    threshold = config.threshold(raw.method)
    if raw.method in P_VALUE_METHODS:
        assert raw.p_adjusted is not None
        drifted = raw.p_adjusted <= threshold and abs(raw.effect) >= config.effect_floor(raw.method)
    else:
        drifted = raw.score > threshold + (raw.noise_floor or 0.0)
    return MethodResult(
        raw.method,
        raw.score,
        raw.effect,
        threshold,
        drifted,
        raw.p_value,
        raw.p_adjusted,
        raw.noise_floor,
    )
