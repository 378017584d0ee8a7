"""Turning what the prediction path buffered into :class:`PredictionLogRecord` s (writer thread).

An *entry* is the plain tuple the path appends (building it costs ~0.1 µs)::

    (time.time(), latency_s, request, result | error, status | None, cached_rows,
     experiment_id, variant)

``status`` is ``None`` for an answered request (``result`` is a ``PredictResult``), else the
failure's metrics status (``result`` is the ``SibylError``). Everything costly happens here:
the id (128 random bits, as a uuid4 has), the timestamp, the inputs table (from whatever layout
the transport decoded), sampling, redaction. Arrays stay numpy until the store or the spool
serialises them.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import zip_longest
from typing import TYPE_CHECKING, Any

from sibyl.monitoring.metrics import Status
from sibyl.settings import PredictionLogSettings
from sibyl.store import PredictionLogRecord

if TYPE_CHECKING:
    from sibyl.runtime.types import Prediction
    from sibyl.service import Inputs, PredictRequest, PredictResult

Entry = tuple[Any, ...]
Resolve = Callable[[str, "str | None"], "tuple[str, Sequence[str]] | None"]
"""``(model, ref) → (version, input column names)`` of the version a ref names, if loaded."""

STATUS_TEXT = {Status.SUCCESS: "ok", Status.INVALID: "invalid"}
"""``prediction_log.status`` for the metrics statuses whose names differ."""
_LIMITS = {"request_id": 128, "model": 200, "version": 64, "variant": 100, "routing_key": 256,
           "fallback": 200, "error": 2000}  # fmt: skip
_MAX_LAYOUTS = 1024


def fit(value: str | None, field: str) -> str | None:
    """``value`` cut to its column's length (an over-long id must not fail the batch)."""
    limit = _LIMITS[field]
    if value is None or len(value) <= limit:
        return value
    return value[: limit - 1] + "…"


class Renderer:
    """Entries → records under one :class:`PredictionLogSettings` policy (writer thread only)."""

    def __init__(
        self,
        settings: PredictionLogSettings,
        *,
        resolve: Resolve | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._mode = settings.inputs
        self._rate = settings.sample_rate
        self._outputs = settings.outputs
        self._names = frozenset(n.lower() for n in settings.redact)
        pattern = settings.redact_pattern
        self._pattern = re.compile(pattern, re.IGNORECASE) if pattern else None
        self._resolve = resolve
        self._rng = rng
        self._layouts: dict[tuple[str, ...], list[int]] = {}

    def __call__(self, entries: Sequence[Entry]) -> list[PredictionLogRecord]:
        ids = os.urandom(16 * len(entries)).hex()  # one system call for the batch's ids
        return [self.record(e, ids[32 * i : 32 * i + 32]) for i, e in enumerate(entries)]

    def record(self, entry: Entry, pid: str | None = None) -> PredictionLogRecord:
        """One entry's record (see the module docstring for the entry); ``pid`` is its id
        (128 random bits as 32 hex digits; made here when not given)."""
        t, latency_s, req, outcome, status, cached, experiment_id, variant = entry
        pid = pid or os.urandom(16).hex()
        if status is None:
            return self._answered(pid, t, latency_s, req, outcome, cached, experiment_id, variant)
        return self._failed(pid, t, latency_s, req, outcome, status, experiment_id, variant)

    def _answered(
        self,
        pid: str,
        t: float,
        latency_s: float,
        req: PredictRequest,
        result: PredictResult,
        cached: int,
        experiment_id: int | None,
        variant: str | None,
    ) -> PredictionLogRecord:
        version = result.version
        if result.fallback is not None:  # logged under the version asked, not the stand-in's
            version = self._version(req) or version
        return PredictionLogRecord(
            pid,
            fit(req.request_id, "request_id") or "",
            datetime.fromtimestamp(t, UTC),
            fit(req.model, "model") or "",
            fit(version, "version") or "",
            len(result.prediction),
            latency_s * 1e3,
            "ok",
            inputs=self._inputs(req.inputs, result.schema.names),
            outputs=outputs_of(result.prediction) if self._outputs else None,
            experiment_id=experiment_id,
            variant=fit(variant or result.variant, "variant"),
            routing_key=fit(req.routing_key, "routing_key"),
            error=result.fallback_reason,
            cached_rows=cached,
            fallback=fit(result.fallback, "fallback"),
        )

    def _failed(
        self,
        pid: str,
        t: float,
        latency_s: float,
        req: PredictRequest,
        exc: Any,
        status: Status,
        experiment_id: int | None,
        variant: str | None,
    ) -> PredictionLogRecord:
        resolved = self._resolve(req.model, req.ref) if self._resolve else None
        version = resolved[0] if resolved else (req.ref or "")
        message = getattr(exc, "message", None) or repr(exc)
        return PredictionLogRecord(
            pid,
            fit(req.request_id, "request_id") or "",
            datetime.fromtimestamp(t, UTC),
            fit(req.model, "model") or "",
            fit(version, "version") or "",
            count_rows(req.inputs),
            latency_s * 1e3,
            STATUS_TEXT.get(status, status.value),
            inputs=self._inputs(req.inputs, resolved[1] if resolved else ()),
            experiment_id=experiment_id,
            variant=fit(variant or req.variant, "variant"),
            routing_key=fit(req.routing_key, "routing_key"),
            error=fit(message, "error"),
        )

    def _version(self, req: PredictRequest) -> str | None:
        resolved = self._resolve(req.model, req.ref) if self._resolve else None
        return resolved[0] if resolved else None

    def _inputs(self, inputs: Inputs, names: Sequence[str]) -> dict[str, Any] | None:
        if self._mode == "none" or (self._mode == "sample" and self._rng() >= self._rate):
            return None
        try:
            columns, rows = tabulate(inputs, names)
        except Exception:  # a layout the transport should not have let through: not logged
            return None
        hidden = self._hidden(columns)
        for row in rows if hidden else ():
            for i in hidden:
                if i < len(row):
                    row[i] = None
        return {"columns": columns, "rows": rows}

    def _hidden(self, columns: list[str]) -> list[int]:
        """Indices of the redacted columns (memoised per column layout)."""
        if not self._names and self._pattern is None:
            return []
        key = tuple(columns)
        hidden = self._layouts.get(key)
        if hidden is None:
            pattern = self._pattern
            hidden = [
                i
                for i, c in enumerate(columns)
                if c.lower() in self._names or (pattern is not None and pattern.fullmatch(c))
            ]
            if len(self._layouts) >= _MAX_LAYOUTS:
                self._layouts.clear()
            self._layouts[key] = hidden
        return hidden


def tabulate(inputs: Inputs, names: Sequence[str]) -> tuple[list[str], list[list[Any]]]:
    """``(columns, rows)`` of a request's inputs in any decoded layout; the rows are new lists
    (safe to redact in place). ``names`` names the columns of positional rows."""
    kind, data = inputs.kind, inputs.data
    if kind == "records":
        columns = list(dict.fromkeys(k for rec in data for k in rec))
        return [str(c) for c in columns], [[rec.get(c) for c in columns] for rec in data]
    if kind == "columns":
        columns = [str(c) for c in data]
        values = [v if isinstance(v, list | tuple) else [v] for v in data.values()]
        return columns, [list(r) for r in zip_longest(*values)]
    if kind == "rows":
        rows = [list(r) if isinstance(r, list | tuple) else [r] for r in data]
        width = max((len(r) for r in rows), default=0)
        return _names(inputs.names or names, width), rows
    if hasattr(data, "columns") and hasattr(data, "to_numpy"):  # a DataFrame
        return [str(c) for c in data.columns], data.to_numpy().tolist()
    rows = data.tolist()  # a 2-D array (an already built batch)
    width = len(rows[0]) if rows and isinstance(rows[0], list) else 1
    return _names(names, width), [r if isinstance(r, list) else [r] for r in rows]


def _names(names: Sequence[str] | None, width: int) -> list[str]:
    given = [str(n) for n in names or ()]
    return given + [str(i) for i in range(len(given), width)]


def count_rows(inputs: Inputs) -> int:
    """Rows a (possibly malformed) request carried; 0 when that cannot be told."""
    data = inputs.data
    try:
        if inputs.kind == "columns":
            return max((len(v) for v in data.values() if isinstance(v, list)), default=1)
        return len(data)
    except Exception:
        return 0


def outputs_of(prediction: Prediction) -> dict[str, Any]:
    """The ``outputs`` document of a prediction (arrays are serialised later)."""
    out: dict[str, Any] = {"predictions": prediction.predictions}
    if prediction.probabilities is not None:
        out["probabilities"] = prediction.probabilities
    if prediction.classes is not None:
        out["classes"] = list(prediction.classes)
    return out
