"""Prediction routes behind FastAPI (documented in OpenAPI; the raw-ASGI front answers the same
paths first when ``server.fast_path`` is on — both call one ``DataPlane``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from sibyl.api.dataplane import DataPlane
from sibyl.api.fastpath import read_body
from sibyl.errors import PayloadTooLargeError

router = APIRouter()

_NATIVE_BODY: dict[str, Any] = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "description": "Exactly one of records / columns / rows.",
                "properties": {
                    "records": {"type": "array", "items": {"type": "object"}},
                    "columns": {"type": "object", "additionalProperties": {"type": "array"}},
                    "rows": {"type": "array", "items": {"type": "array"}},
                    "names": {"type": "array", "items": {"type": "string"}},
                    "version": {"type": "integer"},
                    "alias": {"type": "string"},
                    "priority": {"type": "string", "enum": ["high", "normal", "low"]},
                    "timeout_ms": {"type": "number"},
                    "probabilities": {"type": "boolean"},
                    "routing_key": {
                        "type": "string",
                        "description": "Sticky experiment assignment key (user/session id).",
                    },
                },
            }
        }
    },
    "required": True,
}
_JSON_BODY: dict[str, Any] = {
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "text/csv": {"schema": {"type": "string"}},
    },
    "required": True,
}


async def _answer(
    request: Request, protocol: str, model: str | None, version: str | None
) -> Response:
    plane: DataPlane = request.app.state.dataplane
    headers = {k.lower(): v for k, v in request.headers.items()}
    # the id the front already put on the response, so header and body agree
    headers.setdefault("x-request-id", request.state.request_id)
    try:
        body = await read_body(
            request.receive, headers, request.app.state.container.settings.server.max_body_bytes
        )
    except PayloadTooLargeError as exc:
        reply = plane.error_reply(protocol, exc, headers.get("x-request-id"), model)
    else:
        reply = await plane.handle(protocol, body, headers, model, version)
    return Response(
        reply.body, status_code=reply.status, headers=reply.headers, media_type=reply.content_type
    )


@router.post(
    "/v1/models/{name}/predict",
    tags=["predict"],
    summary="Predict with sibyl's native protocol",
    openapi_extra={"requestBody": _NATIVE_BODY},
)
async def predict(name: str, request: Request) -> Response:
    """Rows as records, columns or arrays; pin with ``version``/``alias``; answers with model,
    version, engine, request id, predictions (+ probabilities and classes for classifiers)."""
    return await _answer(request, "native", name, None)


@router.post(
    "/invocations",
    tags=["mlflow"],
    summary="MLflow scoring protocol (default model)",
    openapi_extra={"requestBody": _JSON_BODY},
)
async def invocations(request: Request) -> Response:
    """``dataframe_split`` / ``dataframe_records`` / ``instances`` / ``inputs`` or CSV."""
    return await _answer(request, "mlflow", None, None)


@router.post(
    "/v1/models/{name}/invocations",
    tags=["mlflow"],
    summary="MLflow scoring protocol for one model",
    openapi_extra={"requestBody": _JSON_BODY},
)
async def model_invocations(name: str, request: Request) -> Response:
    """As ``/invocations`` for model ``name``."""
    return await _answer(request, "mlflow", name, None)


@router.post(
    "/v2/models/{name}/infer",
    tags=["v2"],
    summary="Open Inference Protocol V2 infer",
    openapi_extra={"requestBody": _JSON_BODY},
)
async def v2_infer(name: str, request: Request) -> Response:
    """V2 inference on the production version."""
    return await _answer(request, "v2", name, None)


@router.post(
    "/v2/models/{name}/versions/{version}/infer",
    tags=["v2"],
    summary="Open Inference Protocol V2 infer on a version",
    openapi_extra={"requestBody": _JSON_BODY},
)
async def v2_infer_version(name: str, version: str, request: Request) -> Response:
    """V2 inference on a pinned version."""
    return await _answer(request, "v2", name, version)
