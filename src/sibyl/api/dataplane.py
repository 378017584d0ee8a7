"""The data plane: one function from (protocol, body, headers) to a reply, shared by the fast
ASGI path and the FastAPI routes so both behave identically."""

from __future__ import annotations

import dataclasses
import itertools
import secrets
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import structlog

from sibyl.api import errors
from sibyl.api.codecs import Meta
from sibyl.api.codecs import mlflow as mlflow_codec
from sibyl.api.codecs import native as native_codec
from sibyl.api.codecs import v2 as v2_codec
from sibyl.api.codecs._common import parse_positive, parse_priority, parse_routing_key
from sibyl.errors import SibylError
from sibyl.service import PredictionService

log = structlog.get_logger("sibyl.api")

PROTOCOLS: dict[str, ModuleType] = {"native": native_codec, "v2": v2_codec, "mlflow": mlflow_codec}
JSON = "application/json"
_ID_PREFIX = secrets.token_hex(6)
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """A request id unique across processes (random prefix) without a syscall per request."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):010x}"


@dataclass(slots=True)
class Reply:
    """An HTTP answer: status, body and extra headers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON


class DataPlane:
    """Decode → predict → encode for every protocol; never raises.

    Every error becomes the protocol's own error shape with the status from ``api.errors``;
    unexpected exceptions become 500s that are logged with the request id.
    """

    def __init__(self, service: PredictionService, *, access_log: bool = False) -> None:
        self.service = service
        self.access_log = access_log

    async def handle(
        self,
        protocol: str,
        body: bytes,
        headers: dict[str, str],
        model: str | None,
        ref: str | None,
    ) -> Reply:
        """Answer one prediction request (``headers`` keys lower-case)."""
        codec = PROTOCOLS[protocol]
        request_id = headers.get("x-request-id") or new_request_id()
        try:
            try:  # failures before the service is called are counted here, the rest by it
                meta = _meta(headers, request_id)
                name = model or self.service.default_model()
                self.service.admit(name, ref)
                req = codec.decode(body, headers.get("content-type", ""), name, ref, meta)
                if meta.routing_key is not None or meta.variant is not None:
                    req = dataclasses.replace(
                        req, routing_key=meta.routing_key, variant=meta.variant
                    )
            except SibylError as exc:
                self.service.count_rejected(model, exc)
                raise
            result = await self.service.predict(req)
            payload: bytes = codec.encode(result, meta)
        except SibylError as exc:
            return self._error(codec, exc, request_id, model)
        except Exception as exc:  # a bug must not crash the server or leak a stack trace
            log.exception("unexpected_error", request_id=request_id, model=model)
            internal = SibylError(f"Internal error: {exc!r}")
            self.service.count_rejected(model, internal)
            return self._error(codec, internal, request_id, model)
        if self.access_log:
            log.info(
                "predict",
                request_id=request_id,
                model=result.model,
                version=result.version,
                rows=len(result.prediction),
            )
        reply = Reply(
            200,
            payload,
            {
                "x-request-id": request_id,
                "x-model-name": result.model,
                "x-model-version": result.version,
                "x-model-engine": result.engine,
            },
        )
        if result.experiment is not None:
            reply.headers["x-experiment"] = result.experiment
            reply.headers["x-variant"] = result.variant or ""
        if result.fallback is not None:  # the requested version failed; its chain answered
            reply.headers["x-fallback"] = result.fallback
            reply.headers["x-fallback-reason"] = result.fallback_reason or ""
        if result.members is not None:  # an ensemble: members answered / members asked
            answered = sum(m.ok for m in result.members)
            reply.headers["x-ensemble-members"] = f"{answered}/{len(result.members)}"
        return reply

    def error_reply(
        self, protocol: str, exc: SibylError, request_id: str | None, model: str | None
    ) -> Reply:
        """An error answered before the body was read (size limit) in ``protocol``'s shape."""
        return self._error(PROTOCOLS[protocol], exc, request_id or new_request_id(), model)

    @staticmethod
    def _error(codec: ModuleType, exc: SibylError, request_id: str, model: str | None) -> Reply:
        status, code = errors.classify(exc)
        # client errors are counted in metrics; logging each one would make a flood of bad or
        # shed requests expensive, so they log at debug
        level = log.error if status >= 500 else log.debug
        level(
            "request_failed",
            request_id=request_id,
            model=model,
            status=status,
            code=code,
            error=exc.message,
        )
        headers = {"x-request-id": request_id, **errors.error_headers(exc)}
        return Reply(status, codec.error(exc, request_id), headers)


def _meta(headers: dict[str, str], request_id: str) -> Meta:
    meta = Meta(request_id)
    if "x-priority" in headers:
        meta.priority = parse_priority(headers["x-priority"], "X-Priority")
    if "x-request-timeout-ms" in headers:
        meta.timeout_s = (
            parse_positive(
                _number(headers["x-request-timeout-ms"]), "X-Request-Timeout-Ms", "milliseconds"
            )
            / 1e3
        )
    if "x-routing-key" in headers:
        meta.routing_key = parse_routing_key(headers["x-routing-key"], "X-Routing-Key")
    if "x-variant" in headers:
        meta.variant = parse_routing_key(headers["x-variant"], "X-Variant")
    return meta


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text
