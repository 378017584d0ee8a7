"""What drift monitoring costs per row, how much memory its windows take, and how well it detects.

    python bench/drift.py [--n 2000] [--power]

Times ``DriftMonitor.observe`` for 20 numeric features (a 2-D float array, what the serving path
hands over) at batch sizes 1 and 32, with and without a binary classifier's outputs (prediction
drift), next to a naive peer that keeps the raw rows of the window (a numpy ring buffer) and
runs ``scipy.stats.ks_2samp`` per feature at report time. Also ``report()`` and
``PerformanceEstimator.observe`` (CBPE). Medians of ``--n`` repetitions on one thread; memory is
``nbytes`` of the window state (10 buckets, 2,000-row window). ``--power`` adds detection rate
and false-alarm rate by window size (about a minute). Prints markdown tables.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sibyl.monitoring.drift import (
    DriftConfig,
    DriftMonitor,
    WindowSpec,
    build_profile,
)
from sibyl.monitoring.performance import PerformanceEstimator
from sibyl.runtime.types import Prediction

FEATURES = 20
WINDOW = 2000


def median_us(fn: Callable[[], Any], n: int) -> float:
    samples = []
    for _ in range(n):
        t = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t)
    return statistics.median(samples) / 1000


class RawWindow:
    """The naive peer: the last ``rows`` rows kept verbatim; KS against a reference sample."""

    def __init__(self, reference: np.ndarray, rows: int) -> None:
        self.reference = reference
        self.buffer = np.empty((rows, reference.shape[1]))
        self.pos = self.filled = 0

    def observe(self, batch: np.ndarray) -> None:
        for row in batch:  # O(1) per row: one copy into the ring
            self.buffer[self.pos] = row
            self.pos = (self.pos + 1) % len(self.buffer)
            self.filled = min(self.filled + 1, len(self.buffer))

    def report(self) -> list[float]:
        live = self.buffer[: self.filled]
        return [
            stats.ks_2samp(live[:, j], self.reference[:, j]).pvalue for j in range(live.shape[1])
        ]

    @property
    def nbytes(self) -> int:
        return self.buffer.nbytes + self.reference.nbytes


def outputs(x: np.ndarray) -> Prediction:
    p = 1.0 / (1.0 + np.exp(-x[:, 0]))
    return Prediction((p > 0.5).astype(int), np.column_stack([1 - p, p]), (0, 1))


def cost_table(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(20_000, FEATURES))
    plain = build_profile(reference)
    with_out = build_profile(reference, outputs(reference))
    config = DriftConfig(window=WindowSpec(rows=WINDOW))
    lines = ["| what | batch 1: µs / row | batch 32: µs / row |", "|---|---|---|"]
    cases: list[tuple[str, Callable[[np.ndarray], Any]]] = []
    m1, m2 = DriftMonitor(plain, config), DriftMonitor(with_out, config)
    raw = RawWindow(reference, WINDOW)
    est = PerformanceEstimator(2, window=WindowSpec(rows=WINDOW))
    cases.append(("DriftMonitor.observe, 20 features", m1.observe))
    cases.append(
        ("… plus prediction drift (binary proba + label)", lambda b: m2.observe(b, outputs(b)))
    )
    cases.append(("naive peer: raw-row ring buffer", raw.observe))
    cases.append(
        (
            "PerformanceEstimator.observe (CBPE, binary)",
            lambda b: est.observe(1.0 / (1.0 + np.exp(-b[:, 0]))),
        )
    )
    batches = {k: rng.normal(size=(k, FEATURES)) for k in (1, 32)}
    for name, fn in cases:
        cells = [median_us(lambda fn=fn, k=k: fn(batches[k]), n) / k for k in (1, 32)]
        lines.append(f"| {name} | {cells[0]:.2f} | {cells[1]:.2f} |")
    for _ in range(WINDOW // 32 + 1):
        m1.observe(batches[32])
        raw.observe(batches[32])
    lines.append("")
    lines.append("| report over a full window | ms |")
    lines.append("|---|---|")
    lines.append(
        f"| DriftMonitor.report (20 features, 6 methods each) | "
        f"{median_us(m1.report, max(n // 20, 20)) / 1000:.2f} |"
    )
    lines.append(
        f"| naive peer: scipy ks_2samp per feature (KS only) | "
        f"{median_us(raw.report, max(n // 200, 5)) / 1000:.2f} |"
    )
    return [*lines, "", *memory_table(m1, m2, raw, est)]


def memory_table(
    m1: DriftMonitor, m2: DriftMonitor, raw: RawWindow, est: PerformanceEstimator
) -> list[str]:
    cat = build_profile({"c": np.random.default_rng(1).choice([f"v{i}" for i in range(50)], 5000)})
    mc = DriftMonitor(cat, DriftConfig(window=WindowSpec(rows=WINDOW)))
    return [
        "| window state (2,000-row window, 10 buckets) | bytes |",
        "|---|---|",
        f"| numeric feature (20 quantile bins) | {m1.state_nbytes // m1.n_columns:,} |",
        f"| categorical feature (top 20 values) | {mc.state_nbytes:,} |",
        f"| whole monitor: 20 features | {m1.state_nbytes:,} |",
        f"| whole monitor: 20 features + binary outputs | {m2.state_nbytes:,} |",
        f"| CBPE estimator, binary | {est.state_nbytes:,} |",
        f"| naive peer per feature (2,000 raw rows + 20,000 reference rows) | "
        f"{raw.nbytes // FEATURES:,} |",
    ]


def power_table() -> list[str]:
    sys.path.insert(0, str(ROOT))
    import tests.unit.monitoring.test_drift_streams as streams
    from tests.unit.monitoring.test_drift_streams import run_streams, stream

    profile = build_profile(stream(np.random.default_rng(2024), 20_000))
    lines = [
        "| window rows | detection, 0.1σ shift | detection, 0.25σ shift | false alarms |",
        "|---|---|---|---|",
    ]
    for window in (500, 1000, 2000, 5000):
        streams.WINDOW = window
        config = DriftConfig(window=WindowSpec(rows=window), min_rows=min(window, 1000))
        small, _ = run_streams(profile, 100, 0.1, seed=11, config=config)
        big, _ = run_streams(profile, 100, 0.25, seed=12, config=config)
        _, alarms = run_streams(profile, 300, 0.0, seed=13, config=config)
        lines.append(f"| {window:,} | {small:.0%} | {big:.0%} | {alarms:.1%} |")
    streams.WINDOW = WINDOW
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="repetitions per timing")
    parser.add_argument("--power", action="store_true", help="detection / false-alarm table")
    args = parser.parse_args()
    print("\n".join(cost_table(args.n)))
    if args.power:
        print()
        print("\n".join(power_table()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
