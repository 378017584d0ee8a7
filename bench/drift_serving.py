"""What drift watching adds to one model batch on the serving path, side by side in one run.

    python bench/drift_serving.py [--n 3000]

The serving path calls ``ObservingPredictor.predict`` (``sibyl.service._drift_watch``) in the
batcher's worker thread: the model's own ``predict`` plus the version's ``DriftMonitor.observe``
(20 numeric features + a binary classifier's outputs) and the CBPE estimator. Timed per batch
(means of ``--n`` calls, one thread) at batch sizes 1, 16 and 64 for:

* ``model`` — the predictor alone (ONNX Runtime when it compiles, as the server serves it);
* ``fold every batch`` — wrapped; every batch folded into the monitor and the CBPE estimator
  at once (what an unbuffered watch would cost);
* ``buffered`` — wrapped as served: batches buffered and folded every ``FOLD_ROWS`` rows;
* ``buffered, every 4th`` — the same, observing every 4th batch (``drift.observe_every = 4``).

Prints a markdown table: mean µs per batch and the added cost relative to the model alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sibyl.monitoring.drift import DriftConfig, DriftMonitor, WindowSpec, build_profile
from sibyl.monitoring.performance import PerformanceEstimator
from sibyl.runtime.types import Predictor
from sibyl.service._drift_watch import FOLD_ROWS, ObservingPredictor, VersionWatch

FEATURES = [f"f{i}" for i in range(20)]


def served_model(x: pd.DataFrame, y: np.ndarray) -> Predictor:
    """A HistGradientBoosting classifier loaded as the server loads it (ONNX when it verifies)."""
    import tempfile

    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.ensemble import HistGradientBoostingClassifier

    from sibyl.runtime.loader import load_model
    from sibyl.settings import RuntimeSettings

    model = HistGradientBoostingClassifier(max_iter=50, random_state=0).fit(x, y)
    signature = infer_signature(x, model.predict(x))
    with tempfile.TemporaryDirectory(prefix="sibyl-bench-") as tmp:  # loaded into memory
        path = Path(tmp) / "model"
        mlflow.sklearn.save_model(
            model, str(path), signature=signature, input_example=x.head(3),
            serialization_format="cloudpickle",
        )  # fmt: skip
        loaded = load_model(path, name="bench", version="1", settings=RuntimeSettings())
    print(f"engine: {loaded.engine.engine.value} ({loaded.engine.reason})")
    return loaded.predictor


def timed(fn: Callable[[], object], n: int) -> float:
    """Mean µs per call over ``n`` calls (a mean, so the occasional fold of buffered rows is
    spread over the calls that buffered them)."""
    for _ in range(200):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(20_000, 20)), columns=FEATURES)
    y = (x["f0"] + x["f1"] - x["f2"] > 0).astype(int).to_numpy()
    model = served_model(x, y)
    sample = model.predict(x.to_numpy())
    profile = build_profile(x, sample)
    config = DriftConfig(window=WindowSpec(rows=2000))

    def watch(fold_rows: int, every: int = 1) -> VersionWatch:
        return VersionWatch(
            "m", "1", monitor=DriftMonitor(profile, config, columns=FEATURES),
            estimator=PerformanceEstimator((0, 1)), classes=sample.classes, every=every,
            fold_rows=fold_rows,
        )  # fmt: skip

    variants: dict[str, Predictor] = {
        "model": model,
        "fold every batch": ObservingPredictor(model, watch(1)),
        f"buffered ({FOLD_ROWS} rows)": ObservingPredictor(model, watch(FOLD_ROWS)),
        "buffered, every 4th": ObservingPredictor(model, watch(FOLD_ROWS, every=4)),
    }
    print(f"mean µs per batch over {args.n} calls; drift = 20 features + outputs, plus CBPE\n")
    print("| batch rows | " + " | ".join(variants) + " | added, buffered |")
    print("|---|" + "---|" * (len(variants) + 1))
    for rows in (1, 16, 64):
        batch = x.to_numpy()[:rows].copy()
        times = {
            name: timed(lambda p=p, b=batch: p.predict(b), args.n)  # type: ignore[misc]
            for name, p in variants.items()
        }
        added = times[f"buffered ({FOLD_ROWS} rows)"] - times["model"]
        cells = " | ".join(f"{t:.0f}" for t in times.values())
        print(f"| {rows} | {cells} | {added:.0f} µs ({added / times['model']:.0%}) |")


if __name__ == "__main__":
    main()
