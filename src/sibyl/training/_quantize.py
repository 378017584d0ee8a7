"""Dynamic int8 quantization of torch models, and how the knowledge-tracing models are scored
before and after.

:func:`quantize_dynamic` converts the weights of every ``nn.Linear`` and ``nn.LSTM`` to int8
(activations are quantized on the fly at inference: no calibration data needed) with
``torch.ao.quantization.quantize_dynamic``; embeddings and attention projections other than
``nn.Linear`` stay float. The result runs on CPU (x86 fbgemm / ARM qnnpack kernels).
"""

from __future__ import annotations

import copy
import io
import time
import warnings
from typing import Any

import numpy as np


def quantize_dynamic(module: Any) -> Any:
    """An int8 dynamically quantized copy of ``module`` (eval mode)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        quantized = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            copy.deepcopy(module).eval(), {torch.nn.Linear, torch.nn.LSTM}, dtype=torch.qint8
        )
    return quantized.eval()


def torch_bytes(module: Any) -> int:
    """Bytes of ``torch.save(module)`` (what the registry stores for a pickled module)."""
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(module, buffer)
    return len(buffer.getvalue())


def is_knowledge_tracer(module: Any) -> bool:
    """Whether ``module`` is one of the zoo's knowledge-tracing models."""
    from sibyl.zoo.knowledge_tracing.models import KnowledgeTracer

    return isinstance(module, KnowledgeTracer)


def kt_evaluator(n_students: int, seed: int) -> tuple[Any, Any]:
    """(score, latency) functions for a knowledge tracer on Simulated-5 regenerated with the
    run's ``n_students`` and ``seed``: test AUC (the paper's protocol) and the p99 ms of
    scoring a batch of 32 test students."""
    import warnings as _w

    from sibyl.zoo.knowledge_tracing.data import evaluate_positions, simulate_5
    from sibyl.zoo.knowledge_tracing.loop import (
        dataset_predictions,
        from_dataset,
        predict_positions,
    )

    dataset = simulate_5(n_students, seed=seed)
    batch = from_dataset(dataset.test()).rows(__import__("torch").arange(32))

    def score(module: Any) -> float:
        with _w.catch_warnings():
            _w.simplefilter("ignore")
            return float(evaluate_positions(dataset, dataset_predictions(module, dataset)))

    def latency(module: Any) -> float:
        predict_positions(module, batch)
        times = []
        for _ in range(20):
            started = time.perf_counter()
            predict_positions(module, batch)
            times.append((time.perf_counter() - started) * 1000.0)
        return float(np.percentile(times, 99))

    return score, latency
