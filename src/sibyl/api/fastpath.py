"""A raw-ASGI front for the prediction routes, in front of the FastAPI app.

Starlette's routing, Request/Response objects and middleware cost ≈ 60 µs a request on this
class of machine (see PERFORMANCE-NOTES.md), as much as the rest of a 1-row prediction. The four
prediction routes are therefore matched here with string operations and answered through the
same :class:`DataPlane` the FastAPI routes use; everything else — and every prediction route
when ``server.fast_path`` is off — goes to FastAPI. This front also sets ``X-Request-ID`` on
every response and enforces ``server.max_body_bytes``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog

from sibyl.api.dataplane import DataPlane, Reply, new_request_id
from sibyl.errors import PayloadTooLargeError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def match(method: str, path: str) -> tuple[str, str | None, str | None] | None:
    """``(protocol, model, version)`` for a prediction route, else ``None``."""
    if method != "POST":
        return None
    if path == "/invocations":
        return "mlflow", None, None
    parts = path.strip("/").split("/")
    if len(parts) == 4 and parts[:2] == ["v1", "models"] and parts[2]:
        if parts[3] == "predict":
            return "native", parts[2], None
        if parts[3] == "invocations":
            return "mlflow", parts[2], None
    if parts[:2] == ["v2", "models"] and parts[-1] == "infer" and parts[2]:
        if len(parts) == 4:
            return "v2", parts[2], None
        if len(parts) == 6 and parts[3] == "versions" and parts[4]:
            return "v2", parts[2], parts[4]
    return None


class FastPath:
    """ASGI app: prediction routes answered directly, the rest delegated to ``app``."""

    def __init__(
        self, app: ASGIApp, plane: DataPlane, *, max_body_bytes: int, enabled: bool = True
    ) -> None:
        self.app = app
        self.plane = plane
        self.max_body = max_body_bytes
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = match(scope["method"], scope["path"]) if self.enabled else None
        if route is None:
            send = _with_request_id(scope, send)
            rid = scope["state"]["request_id"]
            with structlog.contextvars.bound_contextvars(request_id=rid):
                await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        protocol, model, version = route
        try:
            body = await read_body(receive, headers, self.max_body)
        except PayloadTooLargeError as exc:
            reply = self.plane.error_reply(protocol, exc, headers.get("x-request-id"), model)
        else:
            reply = await self.plane.handle(protocol, body, headers, model, version)
        await send_reply(send, reply)


async def read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """The whole request body, or ``PayloadTooLargeError`` past ``limit`` bytes."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(_too_large(int(declared), limit), field="body")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(_too_large(size, limit), field="body")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(size: int, limit: int) -> str:
    return (
        f"The request body ({size} bytes) is over the limit of {limit} bytes; split the rows "
        "into several requests or raise server.max_body_bytes"
    )


async def send_reply(send: Send, reply: Reply) -> None:
    """Write a :class:`Reply` to ASGI ``send``."""
    headers = [
        (b"content-type", reply.content_type.encode()),
        (b"content-length", str(len(reply.body)).encode()),
    ]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


def _with_request_id(scope: Scope, send: Send) -> Send:
    """Echo (or create) ``X-Request-ID`` on responses FastAPI writes."""
    rid = next((v for k, v in scope["headers"] if k.lower() == b"x-request-id"), None)
    value = rid or new_request_id().encode()
    scope.setdefault("state", {})["request_id"] = value.decode("latin-1")

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
            message["headers"] = [*headers, (b"x-request-id", value)]
        await send(message)

    return wrapped
