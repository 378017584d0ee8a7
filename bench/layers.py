"""What each layer of sibyl's prediction path costs, in-process (no network, one core).

    python bench/layers.py [--n 3000]

Trains the benchmark model (bench/model.py), serves it from a sibyl container, and times, per
1-row and 32-row MLflow ``dataframe_split`` request: JSON parse, protocol decode, schema
validation, the batcher round trip with a no-op model, the model call (ONNX Runtime and native
sklearn), response encoding, and the whole ASGI app (fast path and FastAPI routes) called
directly. Medians of ``--n`` repetitions, in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model as bench_model


def median_us(fn: Callable[[], Any], n: int) -> float:
    samples = []
    for _ in range(n):
        t = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t)
    return statistics.median(samples) / 1000


async def amedian_us(fn: Callable[[], Any], n: int) -> float:
    samples = []
    for _ in range(n):
        t = time.perf_counter_ns()
        await fn()
        samples.append(time.perf_counter_ns() - t)
    return statistics.median(samples) / 1000


def body(rows: int, rng: np.random.Generator) -> bytes:
    data = rng.normal(size=(rows, 20)).round(6).tolist()
    return orjson.dumps({"dataframe_split": {"columns": bench_model.FEATURES, "data": data}})


async def call_asgi(app: Any, path: str, payload: bytes) -> int:
    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": [(b"content-type", b"application/json"),
                                              (b"content-length", str(len(payload)).encode())],
             "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 8000),
             "client": ("127.0.0.1", 5000), "root_path": "", "state": {}}
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": payload, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def concurrent_us(app: Any, payload: bytes, width: int, n: int) -> float:
    """Wall time per request with ``width`` requests in flight (one core: ≈ CPU per request)."""

    async def worker(count: int) -> None:
        for _ in range(count):
            await call_asgi(app, "/invocations", payload)

    t = time.perf_counter_ns()
    await asyncio.gather(*(worker(n // width) for _ in range(width)))
    return (time.perf_counter_ns() - t) / 1000 / (width * (n // width))


async def measure(n: int) -> dict[str, dict[str, float]]:
    from sibyl.api import create_app
    from sibyl.api.codecs import Meta
    from sibyl.api.codecs import mlflow as codec
    from sibyl.batching import AdaptiveBatcher
    from sibyl.runtime.types import Prediction
    from sibyl.service import build_container
    from sibyl.settings import BatchSettings, Settings

    work = Path(tempfile.mkdtemp(prefix="sibyl-layers-"))
    reg = bench_model.build(work)
    os.environ["MLFLOW_TRACKING_URI"] = reg.tracking_uri
    settings = Settings(data_dir=work / "sibyl")
    settings.logging.level = "WARNING"
    container = build_container(settings)
    await container.start()
    sv = await container.manager.get(bench_model.MODEL_NAME, None)
    loaded = sv.loaded
    rng = np.random.default_rng(0)

    class Noop:
        def predict(self, batch: Any) -> Prediction:
            return Prediction(np.zeros(len(batch)))

    noop = AdaptiveBatcher(Noop(), BatchSettings())
    apps = {}
    for fast in (True, False):
        s = settings.model_copy(deep=True)
        s.server.fast_path = fast
        apps[fast] = create_app(s, container)
    out: dict[str, dict[str, float]] = {}
    for rows in (1, 32):
        payload = body(rows, rng)
        parsed = orjson.loads(payload)
        req = codec.decode(payload, "application/json", bench_model.MODEL_NAME, None, Meta("x"))
        batch = req.inputs.to_batch(loaded.schema)
        result = await container.service.predict(req)
        r: dict[str, float] = {}
        r["json parse"] = median_us(lambda: orjson.loads(payload), n)
        r["protocol decode (incl. parse)"] = median_us(
            lambda: codec.decode(payload, "application/json", "m", None, Meta("x")), n)
        r["schema validation → batch"] = median_us(lambda: req.inputs.to_batch(loaded.schema), n)
        r["batcher round trip (no-op model)"] = await amedian_us(lambda: noop.predict(batch), n)
        r[f"model call ({loaded.engine.engine.value})"] = median_us(
            lambda: loaded.predictor.predict(batch), n)
        r["model call (native)"] = median_us(lambda: loaded.native.predict(batch), max(n // 10, 50))
        r["service.predict (resolve+validate+batch+model)"] = await amedian_us(
            lambda: container.service.predict(req), n)
        r["response encode"] = median_us(lambda: codec.encode(result, Meta("x")), n)
        r["whole app, fast path"] = await amedian_us(
            lambda: call_asgi(apps[True], "/invocations", payload), n)
        r["whole app, FastAPI routes"] = await amedian_us(
            lambda: call_asgi(apps[False], "/invocations", payload), n)
        r["whole app, fast path, 16 concurrent (per request)"] = await concurrent_us(
            apps[True], payload, 16, n)
        del parsed
        out[f"{rows} row(s)"] = r
    await noop.close()
    await container.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    results = asyncio.run(measure(args.n))
    names = list(next(iter(results.values())))
    print("| layer | " + " | ".join(results) + " |")
    print("|---|" + "---:|" * len(results))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{results[k][name]:.1f} µs" for k in results) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
