"""Open Inference Protocol V2 (KServe / Triton / MLServer REST) inference requests.

Inputs are read in one of two layouts: one tensor of shape ``[n, k]`` (rows in signature order),
or one input per column (named after it, shape ``[n]`` or ``[n, 1]`` — the ``"pd"`` content
type, also assumed whenever there are several inputs). In the per-column layout a sequence
column (``Array(long)``) is either an integer tensor ``[n, T]`` (row ``i`` is the history of
row ``i``; equal lengths) or a BYTES tensor ``[n]`` whose elements are JSON lists (``"[3, 1]"``,
any lengths); the schema checks the ids. Outputs follow MLServer's names: ``predict`` (labels or
values) and, for classifiers, ``predict_proba``; models with named outputs (torch modules
returning a dict) answer one tensor per output instead (``p_correct`` ``[n]``, ``mastery``
``[n, k]``). A request's ``outputs`` list selects among them. ``parameters.priority`` (1
highest, 0 default) and ``parameters.timeout`` (µs) are honoured. The response's ``parameters``
carry the ``engine`` and, when a fallback chain answered, ``fallback`` (who) and
``fallback_reason``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sibyl.api import errors
from sibyl.api.codecs._common import (
    Meta,
    dumps,
    json_value,
    loads,
    parse_positive,
    parse_priority,
    require_object,
)
from sibyl.errors import InvalidInputError, SibylError
from sibyl.runtime import oip_datatype
from sibyl.service import Inputs, PredictRequest, PredictResult

DATATYPES = frozenset(
    {
        "BOOL",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "FP16",
        "FP32",
        "FP64",
        "BF16",
        "BYTES",
    }
)
OUTPUTS = ("predict", "predict_proba")


def decode(
    body: bytes, content_type: str, model: str, ref: str | None, meta: Meta
) -> PredictRequest:
    """Parse an inference request."""
    payload = require_object(loads(body), "inference request")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInputError(
            "'inputs' must be a non-empty list of tensors {name, shape, datatype, data}",
            field="inputs",
        )
    meta.extra["id"] = _request_id(payload, meta)
    _parameters(payload.get("parameters"), meta)
    meta.extra["outputs"] = _outputs(payload.get("outputs"))
    tensors = [_tensor(t, i) for i, t in enumerate(inputs)]
    content = (payload.get("parameters") or {}).get("content_type")
    if len(tensors) == 1 and content != "pd":
        name, shape, data = tensors[0]
        return PredictRequest(
            model,
            Inputs("rows", _rows(shape, data, name), None, f"inputs[{name}]"),
            ref,
            meta.priority,
            meta.timeout_s,
            meta.request_id,
        )
    columns = _columns(tensors)
    return PredictRequest(
        model,
        Inputs("columns", columns, None, "inputs"),
        ref,
        meta.priority,
        meta.timeout_s,
        meta.request_id,
    )


def encode(result: PredictResult, meta: Meta) -> bytes:
    """Write an inference response."""
    pred = result.prediction
    requested: tuple[str, ...] | None = meta.extra.get("outputs")
    if pred.outputs is not None:
        outs = [_out(k, pred.outputs[k]) for k in _selected(requested, tuple(pred.outputs))]
    else:
        default = OUTPUTS if pred.probabilities is not None else OUTPUTS[:1]
        outs = _classic(result, requested or default)
    parameters: dict[str, Any] = {"engine": result.engine}
    if result.fallback is not None:
        parameters["fallback"] = result.fallback
        parameters["fallback_reason"] = result.fallback_reason
    return dumps(
        {
            "model_name": result.model,
            "model_version": result.version,
            "id": meta.extra.get("id") or meta.request_id,
            "outputs": outs,
            "parameters": parameters,
        }
    )


def _selected(requested: tuple[str, ...] | None, available: tuple[str, ...]) -> tuple[str, ...]:
    if requested is None:
        return available
    unknown = [n for n in requested if n not in available]
    if unknown:
        raise InvalidInputError(
            f"Unknown output(s) {unknown}; available: {list(available)}", field="outputs"
        )
    return requested


def _classic(result: PredictResult, wanted: tuple[str, ...]) -> list[dict[str, Any]]:
    pred = result.prediction
    _selected(wanted, OUTPUTS)
    outs = []
    if "predict" in wanted:
        outs.append(_out("predict", pred.predictions))
    if "predict_proba" in wanted:
        if pred.probabilities is None:
            raise InvalidInputError(
                f"Output 'predict_proba' is only available for classifiers; "
                f"model '{result.model}' offers ['predict']",
                field="outputs",
            )
        outs.append(_out("predict_proba", pred.probabilities))
    return outs


def error(exc: SibylError, request_id: str) -> bytes:
    """V2 error body ``{"error": ...}``."""
    return errors.v2_body(exc, request_id)


def _request_id(payload: dict[str, Any], meta: Meta) -> str:
    rid = payload.get("id")
    if rid is None:
        return meta.request_id
    if not isinstance(rid, str):
        raise InvalidInputError("'id' must be a string", field="id")
    return rid


def _parameters(params: Any, meta: Meta) -> None:
    if params is None:
        return
    if not isinstance(params, dict):
        raise InvalidInputError("'parameters' must be an object", field="parameters")
    if "priority" in params:
        meta.priority = parse_priority(params["priority"], "parameters.priority")
    if "timeout" in params:
        meta.timeout_s = (
            parse_positive(params["timeout"], "parameters.timeout", "microseconds") / 1e6
        )


def _outputs(outputs: Any) -> tuple[str, ...] | None:
    """The requested output names; whether the model has them is checked by ``encode``."""
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and "name" in o for o in outputs
    ):
        raise InvalidInputError(
            "'outputs' must be a list of {\"name\": ...} objects", field="outputs"
        )
    return tuple(str(o["name"]) for o in outputs)


def _tensor(t: Any, i: int) -> tuple[str, list[int], list[Any]]:
    where = f"inputs[{i}]"
    if not isinstance(t, dict):
        raise InvalidInputError(
            f"'{where}' must be an object {{name, shape, datatype, data}}", field=where
        )
    missing = [k for k in ("name", "shape", "datatype", "data") if k not in t]
    if missing:
        raise InvalidInputError(f"'{where}' is missing {missing}", field=where)
    name, shape, dtype, data = t["name"], t["shape"], t["datatype"], t["data"]
    if not isinstance(name, str):
        raise InvalidInputError(f"'{where}.name' must be a string", field=f"{where}.name")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise InvalidInputError(
            f"'{where}.shape' must be a list of non-negative integers, got {shape!r}",
            field=f"{where}.shape",
        )
    if dtype not in DATATYPES:
        raise InvalidInputError(
            f"'{where}.datatype' {dtype!r} is not one of {sorted(DATATYPES)}",
            field=f"{where}.datatype",
        )
    flat = _flatten(data, where)
    if len(flat) != math.prod(shape):
        raise InvalidInputError(
            f"'{where}' ({name}): shape {shape} needs {math.prod(shape)} values, data has "
            f"{len(flat)}",
            field=name,
        )
    if shape[0] == 0:
        raise InvalidInputError(f"'{where}' ({name}) has no rows; send at least one", field=name)
    return name, shape, flat


def _flatten(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise InvalidInputError(f"'{where}.data' must be a list", field=f"{where}.data")
    if data and isinstance(data[0], list):
        try:
            flat: list[Any] = np.asarray(data, dtype=object).ravel().tolist()
        except ValueError:
            return _bad(where)
        # numpy keeps the rows of a ragged nesting as list objects instead of refusing it
        return _bad(where) if flat and isinstance(flat[0], list) else flat
    return data


def _bad(where: str) -> list[Any]:
    raise InvalidInputError(
        f"'{where}.data' is ragged; nested lists must form a regular array (send sequences "
        "of different lengths as BYTES JSON strings, one per row)",
        field=f"{where}.data",
    )


def _rows(shape: list[int], flat: list[Any], name: str) -> list[list[Any]]:
    n = shape[0]
    width = math.prod(shape[1:]) if len(shape) > 1 else 1
    return [flat[r * width : (r + 1) * width] for r in range(n)]


def _columns(tensors: list[tuple[str, list[int], list[Any]]]) -> dict[str, list[Any]]:
    """One column per input: ``[n]`` / ``[n, 1]`` → n values, ``[n, T]`` → n lists of T values
    (a sequence column; the schema refuses lists in scalar columns)."""
    columns: dict[str, list[Any]] = {}
    for name, shape, flat in tensors:
        if len(shape) > 2:
            raise InvalidInputError(
                f"Input '{name}' has shape {shape}; with one input per column each must be "
                "[n], [n, 1] or, for a sequence column, [n, T]",
                field=name,
            )
        if name in columns:
            raise InvalidInputError(f"Input '{name}' appears twice", field=name)
        wide = len(shape) == 2 and shape[1] != 1
        columns[name] = _rows(shape, flat, name) if wide else flat
    return columns


def _out(name: str, arr: np.ndarray[Any, Any]) -> dict[str, Any]:
    datatype = oip_datatype(arr)
    flat = arr.reshape(-1)
    data = json_value(flat) if datatype != "BYTES" else [_text(v) for v in flat.tolist()]
    return {"name": name, "shape": list(arr.shape), "datatype": datatype, "data": data}


def _text(value: Any) -> str:
    """A BYTES element: strings as they are, anything else (lists, objects) as JSON text."""
    return value if isinstance(value, str) else dumps(value).decode()
