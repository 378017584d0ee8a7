"""sibyl's native protocol: ``POST /v1/models/{name}/predict``.

Request (JSON object) — exactly one of::

    {"records": [{"f0": 1.0, ...}, ...]}          one object per row
    {"columns": {"f0": [1.0, ...], ...}}           one list per column
    {"rows": [[1.0, ...], ...], "names"?: [...]}   one array per row (signature order by default)

plus optional ``version`` (number), ``alias`` (e.g. ``"staging"``), ``priority``
(``high|normal|low`` or 0 to 3), ``timeout_ms``, ``probabilities`` (default true) and
``routing_key`` (sticky experiment assignment; overrides the ``X-Routing-Key`` header). Sequence
columns take a list of ids per row (``{"exercises": [3, 1, 4], ...}``). Response::

    {"model", "version", "engine", "request_id", "predictions": [...],
     "probabilities"?: [[...]], "classes"?: [...], "experiment"?: str, "variant"?: str,
     "members"?: [{"name", "model", "ref", "version", "weight", "share", "status", "error"?}],
     "fallback"?: {"answered_by", "reason"}}

where a model with several named outputs predicts one object per row
(``{"p_correct": 0.71, "mastery": [...]}``), and an ensemble endpoint lists how each member
fared in ``members``. ``fallback`` is present when the requested version did not answer and
its fallback chain did: who answered (``"version 2"``, ``"model rules:1"``, ``"default"``) and
why (``error``, ``timeout``, ``circuit_open``).
"""

from __future__ import annotations

from typing import Any

from sibyl.api import errors
from sibyl.api.codecs._common import (
    Meta,
    dumps,
    json_value,
    loads,
    parse_positive,
    parse_priority,
    parse_routing_key,
    require_object,
)
from sibyl.errors import InvalidInputError, SibylError
from sibyl.service import Inputs, PredictRequest, PredictResult

_LAYOUTS = ("records", "columns", "rows")
_KNOWN = frozenset(
    {
        *_LAYOUTS,
        "names",
        "version",
        "alias",
        "priority",
        "timeout_ms",
        "probabilities",
        "routing_key",
    }
)


def decode(
    body: bytes, content_type: str, model: str, ref: str | None, meta: Meta
) -> PredictRequest:
    """Parse a native predict request."""
    payload = require_object(loads(body), "request body")
    layouts = [k for k in _LAYOUTS if k in payload]
    if len(layouts) != 1:
        raise InvalidInputError(
            "The body needs exactly one of 'records' (list of row objects), 'columns' (object of "
            f"column lists) or 'rows' (list of arrays); got {layouts or sorted(payload)[:5]}",
            field="body",
        )
    unknown = set(payload) - _KNOWN
    if unknown:
        raise InvalidInputError(
            f"Unknown field(s) {sorted(unknown)}; allowed: {sorted(_KNOWN)}",
            field=sorted(unknown)[0],
        )
    kind = layouts[0]
    names = payload.get("names")
    if names is not None and (kind != "rows" or not _is_str_list(names)):
        raise InvalidInputError(
            "'names' is a list of column names and goes with 'rows' only", field="names"
        )
    ref = _ref(payload) or ref
    if "priority" in payload:
        meta.priority = parse_priority(payload["priority"], "priority")
    if "timeout_ms" in payload:
        meta.timeout_s = parse_positive(payload["timeout_ms"], "timeout_ms", "milliseconds") / 1e3
    meta.extra["probabilities"] = payload.get("probabilities", True) is not False
    if "routing_key" in payload:
        meta.routing_key = parse_routing_key(payload["routing_key"], "routing_key")
    return PredictRequest(
        model,
        Inputs(kind, payload[kind], names, kind),  # type: ignore[arg-type]
        ref,
        meta.priority,
        meta.timeout_s,
        meta.request_id,
        meta.routing_key,
        meta.variant,
    )


def encode(result: PredictResult, meta: Meta) -> bytes:
    """Write a native predict response."""
    pred = result.prediction
    out: dict[str, Any] = {
        "model": result.model,
        "version": result.version,
        "engine": result.engine,
        "request_id": result.request_id,
        "predictions": json_value(pred.predictions),
    }
    if pred.probabilities is not None and meta.extra.get("probabilities", True):
        out["probabilities"] = json_value(pred.probabilities)
        out["classes"] = list(pred.classes or ())
    if result.experiment is not None:
        out["experiment"] = result.experiment
        out["variant"] = result.variant
    if result.fallback is not None:
        out["fallback"] = {"answered_by": result.fallback, "reason": result.fallback_reason}
    if result.members is not None:
        out["members"] = [m.to_json() for m in result.members]
    return dumps(out)


def error(exc: SibylError, request_id: str) -> bytes:
    """Native error body."""
    return errors.native_body(exc, request_id)


def _ref(payload: dict[str, Any]) -> str | None:
    version, alias = payload.get("version"), payload.get("alias")
    if version is not None and alias is not None:
        raise InvalidInputError("Give 'version' or 'alias', not both", field="version")
    if version is not None:
        if isinstance(version, bool) or not str(version).isdigit():
            raise InvalidInputError(
                f"'version' must be a version number, got {version!r}", field="version"
            )
        return str(version)
    if alias is not None:
        if not isinstance(alias, str) or not alias:
            raise InvalidInputError(
                f"'alias' must be a non-empty string, got {alias!r}", field="alias"
            )
        return alias
    return None


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)
