"""A Prometheus histogram read from GET /metrics, before and after a run, and its quantiles."""

from __future__ import annotations

import math
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Buckets = dict[float, float]  # upper bound -> cumulative count, summed over every label set


def scrape(url: str, family: str, timeout_s: float = 5.0) -> Buckets | None:
    """The cumulative buckets of histogram ``family`` at ``url``, or None if it is absent."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            text = response.read().decode()
    except OSError:
        return None
    return buckets(text, family)


def buckets(text: str, family: str) -> Buckets | None:
    found: Buckets = {}
    for metric in text_string_to_metric_families(text):
        if metric.name != family:
            continue
        for sample in metric.samples:
            if sample.name == f"{family}_bucket":
                bound = float(sample.labels["le"])
                found[bound] = found.get(bound, 0.0) + sample.value
    return found or None


def delta(before: Buckets | None, after: Buckets | None) -> Buckets | None:
    """Observations made between two scrapes."""
    if after is None:
        return None
    before = before or {}
    return {bound: count - before.get(bound, 0.0) for bound, count in after.items()}


def quantile(hist: Buckets, q: float) -> float | None:
    """Quantile ``q`` by linear interpolation inside its bucket (as PromQL's
    histogram_quantile); None without observations, the last finite bound if it falls in +Inf."""
    bounds = sorted(hist)
    total = hist[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = hist[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, count
    return lower


def open_ended(hist: Buckets, q: float) -> bool:
    """True when quantile ``q`` lies in the +Inf bucket (:func:`quantile` is then a lower bound)."""
    finite = [bound for bound in hist if not math.isinf(bound)]
    return bool(finite) and hist[max(finite)] < q * count(hist)


def count(hist: Buckets) -> float:
    return hist[max(hist)] if hist else 0.0
