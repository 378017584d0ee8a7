"""What every codec shares: JSON parsing with clear errors, per-request metadata, arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from sibyl.batching import Priority
from sibyl.errors import InvalidInputError


@dataclass(slots=True)
class Meta:
    """Transport facts of one request: id, priority and timeout from headers."""

    request_id: str
    priority: Priority = Priority.NORMAL
    timeout_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    routing_key: str | None = None
    """Experiment routing key (``X-Routing-Key`` header; the native body's ``routing_key``)."""
    variant: str | None = None
    """QA override of the experiment variant (``X-Variant`` header)."""


def loads(body: bytes, what: str = "request body") -> Any:
    """Parse JSON or raise ``InvalidInputError`` saying where it broke."""
    if not body:
        raise InvalidInputError(f"The {what} is empty; send a JSON object", field="body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"The {what} is not valid JSON: {exc}", field="body") from None


def json_value(arr: np.ndarray[Any, Any]) -> Any:
    """An array orjson can write as is (numeric, contiguous) or as nested lists."""
    if arr.dtype.kind in "fiub" and arr.flags.c_contiguous:
        return arr
    return arr.tolist()


def dumps(obj: Any) -> bytes:
    """JSON with numpy arrays serialized natively."""
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY, default=_default)


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    raise TypeError(f"cannot serialize {type(obj).__name__}")


def require_object(payload: Any, what: str) -> dict[str, Any]:
    """The payload must be a JSON object."""
    if not isinstance(payload, dict):
        raise InvalidInputError(
            f"The {what} must be a JSON object, got {type(payload).__name__}", field="body"
        )
    return payload


def parse_priority(value: Any, field_name: str) -> Priority:
    """A priority from a body field or header, as a 400 when invalid."""
    try:
        return Priority.parse(value)
    except ValueError as exc:
        raise InvalidInputError(str(exc), field=field_name) from None


def parse_positive(value: Any, field_name: str, unit: str) -> float:
    """A positive number (timeouts) or a 400 naming the field."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise InvalidInputError(
            f"'{field_name}' must be a positive number of {unit}, got {value!r}", field=field_name
        )
    return float(value)


MAX_KEY_CHARS = 256


def parse_routing_key(value: Any, field_name: str) -> str:
    """A routing key: a non-empty string of at most 256 characters, or a 400 naming the field."""
    if not isinstance(value, str) or not value or len(value) > MAX_KEY_CHARS:
        raise InvalidInputError(
            f"'{field_name}' must be a non-empty string of at most {MAX_KEY_CHARS} characters "
            f"(a user or session id), got {value!r:.80}",
            field=field_name,
        )
    return value
