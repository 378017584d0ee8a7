"""Spool lines of :class:`PredictionLogRecord` s: one orjson document per record (numpy arrays
serialised, NaN and ±inf as ``null``), read back with the timestamp parsed."""

from __future__ import annotations

from datetime import datetime

import orjson

from sibyl.monitoring.predlog._writer import Codec
from sibyl.store import PredictionLogRecord
from sibyl.store._predlog import JSON_OPTIONS, json_default


def encode(record: PredictionLogRecord) -> bytes:
    """One spool line (without its newline)."""
    return orjson.dumps(record, default=json_default, option=JSON_OPTIONS)


def decode(line: bytes) -> PredictionLogRecord:
    """The record of a spool line; raises on a corrupt line."""
    fields = orjson.loads(line)
    fields["ts"] = datetime.fromisoformat(fields["ts"])
    return PredictionLogRecord(**fields)


CODEC: Codec[PredictionLogRecord] = Codec(encode, decode)
