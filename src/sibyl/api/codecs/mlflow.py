"""MLflow's scoring protocol (``/invocations``), as ``mlflow models serve`` speaks it.

JSON bodies carry exactly one of ``dataframe_split``, ``dataframe_records``, ``instances`` or
``inputs`` (plus optional ``params``); CSV bodies (``text/csv``, ``application/csv``) are read with
pandas. Success is ``{"predictions": P}``; errors are ``{"error_code", "message"}``.
"""

from __future__ import annotations

import io
from typing import Any

from sibyl.api import errors
from sibyl.api.codecs._common import Meta, dumps, json_value, loads
from sibyl.errors import InvalidInputError, SibylError, UnsupportedMediaTypeError
from sibyl.service import Inputs, PredictRequest, PredictResult

_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_JSON = ("application/json",)
_CSV = ("text/csv", "application/csv")


def decode(
    body: bytes, content_type: str, model: str, ref: str | None, meta: Meta
) -> PredictRequest:
    """Parse an ``/invocations`` request."""
    media, charset = _media(content_type)
    if charset not in (None, "utf-8", "utf8"):
        raise UnsupportedMediaTypeError(
            f"Unsupported charset {charset!r}; send utf-8 encoded {media}"
        )
    if media in _CSV:
        inputs = _csv(body)
    elif media in _JSON:
        inputs = _json(loads(body))
    else:
        raise UnsupportedMediaTypeError(
            f"Unsupported content type {content_type or '(none)'!r}; use application/json "
            "or text/csv"
        )
    return PredictRequest(model, inputs, ref, meta.priority, meta.timeout_s, meta.request_id)


def encode(result: PredictResult, meta: Meta) -> bytes:
    """``{"predictions": ...}`` — what the model's ``predict`` returns, as mlflow writes it."""
    return dumps({"predictions": json_value(result.prediction.predictions)})


def error(exc: SibylError, request_id: str) -> bytes:
    """MLflow error body."""
    return errors.mlflow_body(exc, request_id)


def _media(content_type: str) -> tuple[str, str | None]:
    cached = _MEDIA_CACHE.get(content_type)
    if cached is None:
        cached = _parse_media(content_type)
        if len(_MEDIA_CACHE) < 64:  # clients send a handful of distinct values
            _MEDIA_CACHE[content_type] = cached
    return cached


_MEDIA_CACHE: dict[str, tuple[str, str | None]] = {}


def _parse_media(content_type: str) -> tuple[str, str | None]:
    parts = [p.strip() for p in content_type.split(";")]
    media = parts[0].lower()
    charset = None
    for p in parts[1:]:
        if p.lower().startswith("charset="):
            charset = p.split("=", 1)[1].strip().strip('"').lower()
    return media, charset


def _json(payload: Any) -> Inputs:
    if not isinstance(payload, dict):
        raise InvalidInputError(
            "The body must be a JSON object with exactly one of the keys "
            f"{list(_KEYS)} (a top-level list is not accepted)",
            field="body",
        )
    present = [k for k in _KEYS if k in payload]
    if len(present) != 1:
        raise InvalidInputError(
            f"The body must have exactly one of the keys {list(_KEYS)}; got "
            f"{present or sorted(payload)[:5]}",
            field="body",
        )
    key = present[0]
    value = payload[key]
    if key == "dataframe_split":
        return _split(value)
    if key == "dataframe_records":
        return Inputs("records", value, None, key)
    return _tensor_like(value, key)


def _split(value: Any) -> Inputs:
    if not isinstance(value, dict) or "data" not in value:
        raise InvalidInputError(
            '\'dataframe_split\' must be an object {"columns"?, "index"?, "data"}',
            field="dataframe_split",
        )
    columns = value.get("columns")
    if columns is not None and not isinstance(columns, list):
        raise InvalidInputError(
            "'dataframe_split.columns' must be a list of column names",
            field="dataframe_split.columns",
        )
    return Inputs("rows", value["data"], columns, "dataframe_split.data")


def _tensor_like(value: Any, key: str) -> Inputs:
    if isinstance(value, dict):
        return Inputs("columns", value, None, key)
    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        return Inputs("records", value, None, key)
    if isinstance(value, list) and value and not any(isinstance(r, (list, dict)) for r in value):
        return Inputs("rows", [[v] for v in value], None, key)  # one value per row
    return Inputs("rows", value, None, key)


def _csv(body: bytes) -> Inputs:
    import pandas as pd

    if not body.strip():
        raise InvalidInputError("The CSV body is empty; send a header line and rows", field="body")
    try:
        frame = pd.read_csv(io.BytesIO(body))
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"The CSV body could not be parsed: {exc}", field="body") from None
    return Inputs("frame", frame, None, "csv")


__all__ = ["decode", "encode", "error", "json_value"]
