r"""Sample-ratio mismatch: are the observed counts per variant consistent with the weights?

Pearson's χ² goodness of fit ``X² = Σ (O_i − E_i)² / E_i`` with ``E_i = N·w_i`` (weights
normalised to sum 1), referred to χ² with ``k − 1`` degrees of freedom. A mismatch (the default
alarm is ``p < 0.001``, the usual convention — Fabijan et al. 2019, "Diagnosing sample ratio
mismatch in online controlled experiments", KDD) means assignment or logging is broken and the
comparisons cannot be trusted, whatever they say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sibyl.errors import InvalidInputError
from sibyl.experiments._dist import chi2_sf

SRM_ALARM_P = 0.001


@dataclass(frozen=True)
class SampleRatioCheck:
    """Result of the χ² test; ``mismatch`` is ``p_value < threshold``.

    ``statistic`` is ``None`` when a zero-weight variant received traffic (X² is infinite).
    """

    counts: dict[str, int]
    expected: dict[str, float]
    statistic: float | None
    df: int
    p_value: float
    threshold: float
    mismatch: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_ratio_mismatch(
    counts: Mapping[str, int], weights: Mapping[str, float], *, threshold: float = SRM_ALARM_P
) -> SampleRatioCheck:
    """χ² test of ``counts`` (assignments per variant) against the configured ``weights``.

    Both mappings must name the same variants; weights need not sum to 1. A variant with weight 0
    that received traffic is a certain mismatch (``p = 0``). With no traffic at all the check is
    vacuous (``p = 1``). Raises ``InvalidInputError`` on mismatched names, negative counts or
    weights, or an all-zero weight vector.
    """
    _validate(counts, weights)
    total_w = sum(weights.values())
    total_n = sum(counts.values())
    expected = {k: total_n * weights[k] / total_w for k in counts}
    if total_n == 0 or len(counts) < 2:
        return SampleRatioCheck(
            dict(counts), expected, 0.0, max(len(counts) - 1, 0), 1.0, threshold, False
        )
    if any(expected[k] == 0 and counts[k] > 0 for k in counts):
        return SampleRatioCheck(dict(counts), expected, None, len(counts) - 1, 0.0, threshold, True)
    live = [k for k in counts if expected[k] > 0]
    statistic = sum((counts[k] - expected[k]) ** 2 / expected[k] for k in live)
    df = len(live) - 1
    p = chi2_sf(statistic, df) if df > 0 else 1.0
    return SampleRatioCheck(dict(counts), expected, statistic, df, p, threshold, p < threshold)


def _validate(counts: Mapping[str, int], weights: Mapping[str, float]) -> None:
    if set(counts) != set(weights):
        raise InvalidInputError(
            f"counts name variants {sorted(counts)} but weights name {sorted(weights)}; "
            "pass one count and one weight per variant",
            field="weights",
        )
    if any(c < 0 for c in counts.values()) or any(w < 0 for w in weights.values()):
        raise InvalidInputError("counts and weights must be ≥ 0", field="weights")
    if sum(weights.values()) <= 0:
        raise InvalidInputError("at least one variant needs a weight > 0", field="weights")
