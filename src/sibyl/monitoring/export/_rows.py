"""Exploding prediction-log records into one analytic row per predicted row (pure Python).

A log record holds one request of ``n_rows`` rows; :class:`ChunkBuilder` turns it into ``n_rows``
output rows (one row, with ``row`` NULL, when the request had none — an unparseable body still
counts in success rates) and joins each row's latest feedback (:class:`FeedbackIndex`).
Request-level values are kept once per record and repeated when the chunk is typed
(``_frame.py``); inputs and probabilities are kept as row blocks per column layout, so a chunk
costs a few list operations per record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

# log columns kept once per record (prediction_id is the log's id)
RECORD_COLUMNS = (
    "id",
    "request_id",
    "ts",
    "model",
    "version",
    "experiment_id",
    "variant",
    "routing_key",
    "n_rows",
    "latency_ms",
    "status",
    "error",
    "cached_rows",
    "fallback",
)
# output order of the request-level columns
REQUEST_COLUMNS = (
    "prediction_id",
    "request_id",
    "row",
    "ts",
    "day",
    "model",
    "version",
    "experiment_id",
    "variant",
    "routing_key",
    "n_rows",
    "latency_ms",
    "status",
    "error",
    "cached",
    "cached_rows",
    "fallback",
)
FEEDBACK_COLUMNS = ("label", "value", "feedback_at")
_PER_RECORD = ("id", "model", "request_id", "n_rows", "inputs", "outputs")
INPUT_PREFIX = "in_"
PROBA_PREFIX = "proba_"


@dataclass(frozen=True, slots=True)
class Truth:
    """One feedback row as the export joins it."""

    id: int
    received_at: datetime
    label: str | None
    value: float | None

    def key(self) -> tuple[datetime, int]:
        return (self.received_at, self.id)


class FeedbackIndex:
    """The feedback that may apply to a batch of log records, looked up per output row.

    A row's feedback is the latest (by ``received_at``, then id) of: feedback whose
    ``prediction_id`` is the record's id, and feedback without ``prediction_id`` whose
    ``request_id`` and ``model`` are the record's — each for that ``row`` or for every row
    (``row`` NULL).
    """

    def __init__(self) -> None:
        self._latest: dict[tuple[Any, ...], Truth] = {}
        self._records: set[tuple[Any, ...]] = set()

    def add(self, fb: Mapping[Any, Any]) -> None:
        """Index one feedback row (a mapping with the ``feedback`` table's columns)."""
        if fb["prediction_id"] is not None:
            record: tuple[Any, ...] = ("p", fb["prediction_id"])
        else:
            record = ("r", fb["model"], fb["request_id"])
        self._records.add(record)
        truth = Truth(fb["id"], fb["received_at"], fb["label"], fb["value"])
        key = (*record, fb["row"])
        known = self._latest.get(key)
        if known is None or truth.key() > known.key():
            self._latest[key] = truth

    def has(self, pid: str, model: str, request_id: str) -> bool:
        """Whether any feedback may apply to this record (a cheap pre-check)."""
        return ("p", pid) in self._records or ("r", model, request_id) in self._records

    def lookup(self, pid: str, model: str, request_id: str, row: int | None) -> Truth | None:
        """The latest feedback for ``row`` of the record, or ``None``."""
        keys = (
            ("p", pid, row),
            ("p", pid, None),
            ("r", model, request_id, row),
            ("r", model, request_id, None),
        )
        found = [t for k in keys if (t := self._latest.get(k)) is not None]
        return max(found, key=Truth.key) if found else None


def label_text(value: Any) -> str | None:
    """A classifier's predicted label as text, in the form feedback labels take (``1`` → "1",
    ``1.0`` → "1", ``True`` → "true")."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


@dataclass
class Block:
    """Per-row values of records sharing one column layout (input columns or classes):
    ``positions[i]`` is the chunk row that ``rows[i]`` belongs to."""

    positions: list[int] = field(default_factory=list)
    rows: list[Any] = field(default_factory=list)


class ChunkBuilder:
    """Output rows of one partition. Not thread-safe."""

    def __init__(self, day: str) -> None:
        self.day = day
        self.n = 0
        self.records: dict[str, list[Any]] = {c: [] for c in RECORD_COLUMNS}
        self.counts: list[int] = []
        self.predictions: list[Any] = []
        self.classifier = False
        self.probabilities: dict[tuple[str, ...], Block] = {}
        self.inputs: dict[tuple[str, ...], Block] = {}
        self.feedback: dict[str, list[Any]] = {c: [] for c in FEEDBACK_COLUMNS}

    def add(
        self, columns: Mapping[str, Sequence[Any]], start: int, stop: int, feedback: FeedbackIndex
    ) -> None:
        """Append records ``start:stop`` of a batch given column by column (the log's columns,
        ``inputs`` and ``outputs`` as JSON text)."""
        for name, values in self.records.items():
            values.extend(columns[name][start:stop])
        per_record = (columns[c][start:stop] for c in _PER_RECORD)
        for pid, model, request_id, n_rows, inputs, outputs in zip(*per_record, strict=True):
            k = n_rows if n_rows > 0 else 1
            self.counts.append(k)
            self._outputs(_json(outputs) or {}, k)
            if (decoded := _json(inputs)) is not None:
                self._inputs(decoded, k)
            self._feedback((pid, model, request_id), n_rows, k, feedback)
            self.n += k

    def _outputs(self, outputs: Mapping[str, Any], k: int) -> None:
        predictions = _padded(outputs.get("predictions"), k)
        probabilities, classes = outputs.get("probabilities"), outputs.get("classes")
        if classes is not None or probabilities is not None:
            self.classifier = True
        self.predictions.extend(predictions)
        if probabilities:
            rows = _padded(probabilities, k)
            width = max((len(p) for p in rows if isinstance(p, list)), default=0)
            names = tuple(str(c) for c in classes) if classes else _indices(width)
            self._block(self.probabilities, names, rows, k)

    def _inputs(self, inputs: Mapping[str, Any], k: int) -> None:
        names = tuple(str(c) for c in inputs.get("columns") or ())
        if names:
            self._block(self.inputs, names, _padded(inputs.get("rows"), k), k)

    def _block(
        self, blocks: dict[tuple[str, ...], Block], names: tuple[str, ...], rows: list[Any], k: int
    ) -> None:
        block = blocks.get(names)
        if block is None:
            block = blocks[names] = Block()
        block.positions.extend(range(self.n, self.n + k))
        block.rows.extend(rows)

    def _feedback(
        self, record: tuple[str, str, str], n_rows: int, k: int, feedback: FeedbackIndex
    ) -> None:
        label, value, at = (self.feedback[c] for c in FEEDBACK_COLUMNS)
        if not feedback.has(*record):
            for column in (label, value, at):
                column.extend([None] * k)
            return
        for row in range(k) if n_rows > 0 else [None]:
            truth = feedback.lookup(*record, row)
            label.append(truth.label if truth else None)
            value.append(truth.value if truth else None)
            at.append(truth.received_at if truth else None)


def _json(text: str | None) -> Any:
    """A JSON column's value (SQL NULL and JSON ``null`` alike → ``None``)."""
    return orjson.loads(text) if text else None


def _indices(width: int) -> tuple[str, ...]:
    return tuple(str(i) for i in range(width))


def _padded(values: Any, k: int) -> list[Any]:
    """``values`` cut or padded with ``None`` to ``k`` items (a failed request has none; a
    malformed document, not a list, counts as none)."""
    if not isinstance(values, list | tuple):
        return [None] * k
    items = list(values[:k])
    if len(items) < k:
        items.extend([None] * (k - len(items)))
    return items


def ordered(inputs: Iterable[str], probabilities: Iterable[str]) -> list[str]:
    """Output column order: request columns, inputs, prediction, probabilities, feedback."""
    return [*REQUEST_COLUMNS, *inputs, "prediction", *probabilities, *FEEDBACK_COLUMNS]
