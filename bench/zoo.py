"""What the serving engine buys for each zoo model: one model call, native library vs the engine
sibyl chose (ONNX Runtime, PyTorch, pyfunc), on the model's own input example.

Trains the small zoo into a temporary registry (``sibyl demo --no-serve``; or ``--registry URI``
to use an existing one), loads each production version with sibyl's runtime exactly as
``sibyl serve`` does, then times ``native.predict`` and ``predictor.predict`` interleaved, on
1-row and 32-row batches built from the input example, and prints a Markdown table of medians
and ratios (``--results-md`` appends nothing: paste it into RESULTS.md).

    .venv/bin/python bench/zoo.py [--registry sqlite:///…/mlflow.db] [--calls 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _registry(args: argparse.Namespace) -> str:
    if args.registry:
        return str(args.registry)
    tmp = Path(tempfile.mkdtemp(prefix="sibyl-zoo-bench-"))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "SIBYL_DATA_DIR": str(tmp / ".sibyl"),
           "SIBYL_DATASETS_DIR": str(ROOT / ".sibyl" / "datasets"), "OMP_NUM_THREADS": "1"}
    print(f"training the small zoo into {uri} …", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "sibyl.cli", "demo", "--no-serve"], env=env, cwd=tmp,
                   check=True, capture_output=True)
    return uri


def _load(uri: str, name: str, tmp: Path) -> Any:
    from sibyl.registry import ModelRegistry
    from sibyl.runtime import load_model
    from sibyl.settings import RuntimeSettings

    registry = ModelRegistry(uri)
    info = registry.resolve(name, "production")
    path = registry.download(name, info.version, tmp)
    tags = dict(info.tags)
    return load_model(path, name=name, version=info.version, settings=RuntimeSettings(),
                      tags=tags)


def _batch(example: Any, rows: int) -> Any:
    import numpy as np

    index = np.arange(rows) % len(example)
    if hasattr(example, "iloc"):
        return example.iloc[index].reset_index(drop=True)
    return example[index]


def _median_us(fn: Any, batch: Any, calls: int) -> float:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        fn(batch)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def _measure(model: Any, rows: int, calls: int, rounds: int) -> tuple[float, float]:
    batch = _batch(model.input_example, rows)
    native, served = [], []
    for _ in range(rounds):  # interleaved, so both see the same machine
        native.append(_median_us(model.native.predict, batch, calls))
        served.append(_median_us(model.predictor.predict, batch, calls))
    return statistics.median(native), statistics.median(served)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", help="MLflow tracking URI holding the zoo (default: train)")
    parser.add_argument("--calls", type=int, default=300, help="calls per median")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    from sibyl.zoo.catalog import USE_CASES

    uri = _registry(args)
    tmp = Path(tempfile.mkdtemp(prefix="sibyl-zoo-models-"))
    print("| model | engine | rows | native µs | served µs | native / served |")
    print("|---|---|---|---|---|---|")
    with threadpool_limits(limits=1):
        for case in USE_CASES.values():
            for name in case.models:
                model = _load(uri, name, tmp)
                if model.input_example is None:
                    print(f"| `{name}` | {model.engine.engine} | – | no input example | | |")
                    continue
                for rows in (1, 32):
                    native, served = _measure(model, rows, args.calls, args.rounds)
                    print(f"| `{name}` | {model.engine.engine.value} | {rows} | {native:,.0f} "
                          f"| {served:,.0f} | {native / served:.1f}× |", flush=True)


if __name__ == "__main__":
    main()
